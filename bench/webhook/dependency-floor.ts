// The floor under the webhook's idle memory: a process that loads what `netmesh webhook` loads
// from its dependencies and nothing of netmesh itself. It imports every runtime package the
// product design names (client-node, express, pino, prom-client, node-forge, fast-json-patch,
// yaml), makes the typed client-node API clients the webhook command makes, gives back what
// loading left (runtime/startup-memory.ts, as netmesh does before it reports ready), prints
// `ready` and idles. Bundled and started like netmesh (the image's bundle layout and Node
// options), so `netmesh webhook`'s idle RSS minus this one is what netmesh's own code, state and
// connections hold.
//
//   node <node options> dependency-floor.js
import * as k8s from '@kubernetes/client-node';
import express from 'express';
import * as jsonpatch from 'fast-json-patch';
import forge from 'node-forge';
import { pino } from 'pino';
import * as prom from 'prom-client';
import * as yaml from 'yaml';
import { releaseStartupMemory } from '../../runtime/startup-memory.ts';

const kc = new k8s.KubeConfig();
// Never contacted: the clients are made, not used.
kc.loadFromOptions({
  clusters: [{ name: 'floor', server: 'https://127.0.0.1:1', skipTLSVerify: false }],
  users: [{ name: 'floor' }],
  contexts: [{ name: 'floor', cluster: 'floor', user: 'floor' }],
  currentContext: 'floor',
});
const held: unknown[] = [
  express,
  jsonpatch,
  forge,
  pino,
  prom,
  yaml,
  k8s.ListWatch,
  new k8s.Watch(kc),
  // The typed clients webhook/start.ts, registration.ts and the bootstrap copier's leader
  // election make.
  kc.makeApiClient(k8s.CoreV1Api),
  kc.makeApiClient(k8s.AppsV1Api),
  kc.makeApiClient(k8s.AdmissionregistrationV1Api),
  kc.makeApiClient(k8s.CoordinationV1Api),
  kc.makeApiClient(k8s.VersionApi),
];
releaseStartupMemory();
console.log(`ready ${held.length}`);
setInterval(() => held.length, 1 << 30);
process.on('SIGTERM', () => process.exit(0));
