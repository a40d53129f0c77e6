// The `admission` area: what netmesh's webhook costs the apiserver's Pod-create path, end to
// end. The same client creates Pods (stored in etcd, as a controller's are; generateName, and a
// schedulerName no scheduler answers to, so no node ever runs them) in a namespace labelled for
// injection, in interleaved rounds, three ways: with the chart's MutatingWebhookConfiguration
// registered (netmesh `webhook` on this host at webhook.localRunURL, failurePolicy Fail); with the
// same configuration pointing at a bare Node webhook that answers with netmesh's patch
// (bare-webhook.mjs: what any webhook making this mutation costs); and with no webhook. Every run
// starts with the namespace empty: the Pods of the previous one are deleted first.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { installChart, serviceAccountKubeconfig } from '../../cluster/chart.ts';
import { freePort } from '../../cluster/controlplane.ts';
import { type NetmeshProcess, startNetmesh } from '../../cluster/netmesh-process.ts';
import {
  NAMESPACE_INJECTION_ENABLED,
  NAMESPACE_INJECTION_LABEL,
  STATUS_ANNOTATION,
} from '../../webhook/core/contract.ts';
import { coursePodManifest, typicalDeployment } from '../fixtures/workloads.ts';
import type { AreaResult, BenchArea, BenchContext } from '../lib/area.ts';
import { readCpuSeconds } from '../lib/procfs.ts';
import {
  type AdmissionBody,
  type AdmissionRun,
  type AdmissionRuns,
  admissionTables,
  admissionTargets,
  apiserverWebhookTiming,
  percentile,
  REGISTRATION_NAMES,
  type Registration,
  summarizeAdmission,
  webhookCounters,
} from './report.ts';

const RELEASE = 'netmesh-admission';
const SYSTEM_NS = 'netmesh-bench-admission';
const APP_NS = 'netmesh-bench-admission-app';
const CONCURRENCY = 16;
/** No scheduler answers to it: the stored Pods stay Pending, on any cluster the bench targets. */
const SCHEDULER_NAME = 'netmesh-bench-unscheduled';

interface Plan {
  rounds: number;
  seconds: number;
  warmupSeconds: number;
}
const FULL: Plan = { rounds: 6, seconds: 8, warmupSeconds: 3 };
const QUICK: Plan = { rounds: 2, seconds: 1.5, warmupSeconds: 0.5 };

async function waitUntil(what: string, fn: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A keep-alive HTTPS client with the admin's credentials: light, so the apiserver is what is measured. */
class PodClient {
  readonly #agent: Agent;
  readonly #url: URL;
  constructor(tls: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer }, server: string) {
    this.#agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY, ...tls });
    this.#url = new URL(`/api/v1/namespaces/${APP_NS}/pods`, server);
  }

  /** One create; resolves with the Pod the apiserver stored. */
  create(body: string): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const req = request(
        this.#url,
        {
          method: 'POST',
          agent: this.#agent,
          headers: { 'content-type': 'application/json' },
          timeout: 30_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.on('timeout', () => req.destroy(new Error('Pod create timed out')));
      req.end(body);
    });
  }

  /**
   * CONCURRENCY loops creating Pods for `seconds`; every answer must be 201. `cpu` names the
   * processes whose CPU time per create is reported (the apiserver, netmesh, this client).
   */
  async load(
    body: string,
    seconds: number,
    cpu: Record<string, () => number>,
    webhookMetrics: () => Promise<string>,
    apiserverMetrics: (() => Promise<string>) | undefined,
  ): Promise<AdmissionRun> {
    const latencies: number[] = [];
    const w0 = webhookCounters(await webhookMetrics());
    const a0 = apiserverMetrics ? apiserverWebhookTiming(await apiserverMetrics()) : undefined;
    const cpu0 = Object.fromEntries(Object.entries(cpu).map(([k, f]) => [k, f()]));
    const started = performance.now();
    const end = started + seconds * 1000;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (performance.now() < end) {
          const t = performance.now();
          const r = await this.create(body);
          if (r.status !== 201) throw new Error(`Pod create answered ${r.status}: ${r.text.slice(0, 300)}`);
          latencies.push(performance.now() - t);
        }
      }),
    );
    const elapsed = (performance.now() - started) / 1000;
    const cpuMicrosPerCreate = Object.fromEntries(
      Object.entries(cpu).map(([k, f]) => [k, ((f() - cpu0[k]!) / latencies.length) * 1e6]),
    );
    const w1 = webhookCounters(await webhookMetrics());
    const calls = w1.requests - w0.requests;
    const a1 = apiserverMetrics ? apiserverWebhookTiming(await apiserverMetrics()) : undefined;
    const apiserverCalls = a0 && a1 ? a1.calls - a0.calls : 0;
    return {
      cpuMicrosPerCreate,
      webhookCallsPerCreate: calls / latencies.length,
      webhookMeanMs: calls > 0 ? ((w1.seconds - w0.seconds) / calls) * 1000 : 0,
      apiserverWebhookMeanMs:
        a0 && a1 && apiserverCalls > 0 ? ((a1.seconds - a0.seconds) / apiserverCalls) * 1000 : Number.NaN,
      perSecond: latencies.length / elapsed,
      creates: latencies.length,
      p50Ms: percentile(latencies, 0.5),
      p99Ms: percentile(latencies, 0.99),
    };
  }

  close(): void {
    this.#agent.destroy();
  }
}

function injected(text: string): boolean {
  const pod = JSON.parse(text) as k8s.V1Pod;
  return pod.metadata?.annotations?.[STATUS_ANNOTATION] !== undefined;
}

/** A Pod to store many times: a generated name, and never scheduled. */
function storable(pod: k8s.V1Pod, generateName: string): string {
  const { name: _name, ...metadata } = pod.metadata ?? {};
  return JSON.stringify({
    ...pod,
    metadata: { ...metadata, generateName },
    spec: { ...pod.spec!, schedulerName: SCHEDULER_NAME },
  });
}

function podBodies(): { name: string; body: string }[] {
  const typical = typicalDeployment().spec!.template;
  const typicalPod: k8s.V1Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    ...(typical.metadata ? { metadata: typical.metadata } : {}),
    ...(typical.spec ? { spec: typical.spec } : {}),
  };
  return [
    { name: "course's Pod", body: storable(coursePodManifest(), 'course-') },
    { name: 'Deployment Pod', body: storable(typicalPod, 'checkout-') },
  ];
}

/** The bare webhook (bare-webhook.mjs) on this host with netmesh's serving certificate. */
async function startBareWebhook(opts: {
  dir: string;
  tls: { certPem: string; keyPem: string; caPem: string };
  netmeshUrl: string;
}): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  const port = await freePort();
  const config = join(opts.dir, 'bare-webhook.json');
  writeFileSync(
    config,
    JSON.stringify({
      host: '127.0.0.1',
      port,
      certPem: opts.tls.certPem,
      keyPem: opts.tls.keyPem,
      learnFrom: { url: opts.netmeshUrl, caPem: opts.tls.caPem },
    }),
    { mode: 0o600 },
  );
  const logFile = join(opts.dir, 'bare-webhook.log');
  const out = openSync(logFile, 'w');
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [fileURLToPath(new URL('./bare-webhook.mjs', import.meta.url)), config], {
      stdio: ['ignore', out, out],
    });
  } finally {
    closeSync(out);
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  try {
    await waitUntil('the bare webhook to listen', async () => {
      if (child.exitCode !== null)
        throw new Error(`the bare webhook exited: ${readFileSync(logFile, 'utf8')}`);
      return /^listening /m.test(readFileSync(logFile, 'utf8'));
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: `https://127.0.0.1:${port}/mutate`, pid: child.pid!, stop };
}

/** Deletes every Pod of the namespace and waits until none is left (unscheduled Pods go at once). */
async function emptyNamespace(core: k8s.CoreV1Api): Promise<void> {
  await core.deleteCollectionNamespacedPod({ namespace: APP_NS, gracePeriodSeconds: 0 });
  await waitUntil(
    `the Pods of ${APP_NS} to be deleted`,
    async () => ((await core.listNamespacedPod({ namespace: APP_NS, limit: 1 })).items ?? []).length === 0,
    300_000,
  );
}

async function run(ctx: BenchContext): Promise<AreaResult> {
  const plan = ctx.quick ? QUICK : FULL;
  const cluster = await ctx.cluster();
  const kc = cluster.kc;
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const admission = kc.makeApiClient(k8s.AdmissionregistrationV1Api);
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error('the kubeconfig names no cluster');
  let webhook: NetmeshProcess | undefined;
  let bare: Awaited<ReturnType<typeof startBareWebhook>> | undefined;
  let bareConfig: k8s.V1MutatingWebhookConfiguration | undefined;
  let removeToken: (() => void) | undefined;
  let client: PodClient | undefined;
  let configName = '';
  let saved: k8s.V1MutatingWebhookConfiguration | undefined;
  try {
    const port = await freePort();
    const chart = installChart(cluster.kubeconfigPath, RELEASE, SYSTEM_NS, {
      'webhook.localRunURL': `https://127.0.0.1:${port}/mutate`,
      'webhook.failurePolicy': 'Fail',
    });
    configName = chart.fullname;
    const sa = await serviceAccountKubeconfig(kc, SYSTEM_NS, chart.fullname, 24 * 3600);
    removeToken = sa.remove;
    ctx.progress('admission: starting netmesh webhook on this host (chart identity)');
    webhook = await startNetmesh(
      'webhook',
      [
        `--kubeconfig=${sa.path}`,
        `--netmesh-namespace=${SYSTEM_NS}`,
        '--tls-secret=netmesh-webhook-tls',
        `--listen=127.0.0.1:${port}`,
        `--webhook-config-name=${configName}`,
        '--shutdown-delay=0s',
      ],
      // The production default: one log line per admission.
      {
        NETMESH_LOG_LEVEL: 'info',
        ...(ctx.profileDir ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${ctx.profileDir}` } : {}),
      },
      ctx.netmeshBin,
      ctx.netmeshNodeArgs,
    );
    await webhook.waitReady(60_000);
    await waitUntil('netmesh to patch the caBundle', async () => {
      const mwc = await admission.readMutatingWebhookConfiguration({ name: configName });
      return (mwc.webhooks ?? []).every((w) => (w.clientConfig.caBundle ?? '').length > 0);
    });
    const live = await admission.readMutatingWebhookConfiguration({ name: configName });
    saved = {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: {
        name: configName,
        ...(live.metadata?.labels ? { labels: live.metadata.labels } : {}),
        ...(live.metadata?.annotations ? { annotations: live.metadata.annotations } : {}),
      },
      ...(live.webhooks ? { webhooks: live.webhooks } : {}),
    };
    // The same webhooks (selectors, failure policy, timeouts), served by the bare webhook.
    const secret = await core.readNamespacedSecret({ name: 'netmesh-webhook-tls', namespace: SYSTEM_NS });
    const field = (key: string): string => Buffer.from(secret.data?.[key] ?? '', 'base64').toString('utf8');
    bare = await startBareWebhook({
      dir: ctx.workDir,
      tls: { certPem: field('tls.crt'), keyPem: field('tls.key'), caPem: field('ca.crt') },
      netmeshUrl: `https://127.0.0.1:${port}/mutate`,
    });
    const bareUrl = bare.url;
    bareConfig = {
      ...saved,
      metadata: { ...saved.metadata, name: `${configName}-bare` },
      webhooks: (saved.webhooks ?? []).map((w) => ({
        ...w,
        clientConfig: { ...w.clientConfig, url: bareUrl },
      })),
    };
    const configs: Record<Exclude<Registration, 'none'>, k8s.V1MutatingWebhookConfiguration> = {
      webhook: saved,
      bare: bareConfig,
    };
    await core.createNamespace({
      body: {
        metadata: { name: APP_NS, labels: { [NAMESPACE_INJECTION_LABEL]: NAMESPACE_INJECTION_ENABLED } },
      },
    });
    // The ServiceAccount admission plugin refuses Pods until the namespace's default account exists.
    await waitUntil(`ServiceAccount default in ${APP_NS}`, () =>
      core.readNamespacedServiceAccount({ name: 'default', namespace: APP_NS }).then(() => true),
    );

    const opts: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer } = {};
    await kc.applyToHTTPSOptions(opts);
    client = new PodClient({ ca: opts.ca, cert: opts.cert, key: opts.key } as never, server);
    const c = client;
    const bodies = podBodies();
    // CPU time per create, of the apiserver (when this run started it), netmesh and this client.
    const apiserverPid = cluster.local?.processes.find((p) => p.name === 'kube-apiserver')?.child.pid;
    const webhookPid = webhook.child.pid!;
    const barePid = bare.pid;
    const healthPort = webhook.healthPort;
    const local = cluster.local;
    const apiserverMetrics = local ? () => local.metrics() : undefined;
    const webhookMetrics = async (): Promise<string> =>
      (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
    const cpu: Record<string, () => number> = {
      ...(apiserverPid ? { apiserver: () => readCpuSeconds(apiserverPid) } : {}),
      netmesh: () => readCpuSeconds(webhookPid),
      bare: () => readCpuSeconds(barePid),
      // This process: the client (nothing else runs in it meanwhile).
      client: () => {
        const u = process.cpuUsage();
        return (u.user + u.system) / 1e6;
      },
    };

    const netmeshCalls = async (): Promise<number> => webhookCounters(await webhookMetrics()).requests;
    /**
     * One create, and whether it went the `want` way: injected by netmesh (its request counter
     * moved), injected without netmesh (the bare webhook), or not injected.
     */
    const createsAs = async (want: Registration, body: string): Promise<boolean> => {
      const before = await netmeshCalls();
      const r = await c.create(body);
      if (r.status !== 201) throw new Error(`Pod create answered ${r.status}: ${r.text.slice(0, 300)}`);
      const byNetmesh = (await netmeshCalls()) > before;
      return injected(r.text) === (want !== 'none') && byNetmesh === (want === 'webhook');
    };

    /** Registers the wanted configuration (or none), and waits until the apiserver acts accordingly. */
    let state: Registration = 'webhook';
    const set = async (want: Registration): Promise<void> => {
      if (want === state) return;
      if (state !== 'none')
        await admission.deleteMutatingWebhookConfiguration({ name: configs[state].metadata!.name! });
      if (want !== 'none') await admission.createMutatingWebhookConfiguration({ body: configs[want] });
      state = want;
      // The apiserver picks up webhook configurations through its own informer: wait until three
      // creates in a row show the wanted behaviour.
      let streak = 0;
      await waitUntil(`the apiserver to admit Pods with ${REGISTRATION_NAMES[want]}`, async () => {
        streak = (await createsAs(want, bodies[0]!.body)) ? streak + 1 : 0;
        return streak >= 3;
      });
      await emptyNamespace(core);
    };

    for (const b of bodies) {
      const r = await c.create(b.body);
      if (r.status !== 201 || !injected(r.text))
        throw new Error(
          `the ${b.name} was not injected through the apiserver (HTTP ${r.status}): ${r.text.slice(0, 500)}`,
        );
    }
    await emptyNamespace(core);
    ctx.progress('admission: warming up');
    for (const want of ['webhook', 'bare', 'none'] as const) {
      await set(want);
      for (const b of bodies) {
        await c.load(b.body, plan.warmupSeconds, cpu, webhookMetrics, apiserverMetrics);
        await emptyNamespace(core);
      }
    }

    const results: AdmissionBody[] = bodies.map((b) => ({
      name: b.name,
      runs: { webhook: [], bare: [], none: [] },
    }));
    for (let round = 0; round < plan.rounds; round++) {
      const order: Registration[] =
        round % 2 === 0 ? ['webhook', 'bare', 'none'] : ['none', 'bare', 'webhook'];
      for (const want of order) {
        await set(want);
        for (const [i, b] of bodies.entries()) {
          const r = await c.load(b.body, plan.seconds, cpu, webhookMetrics, apiserverMetrics);
          // Still the wanted path after the load (nothing re-registered or lost meanwhile).
          if (!(await createsAs(want, b.body)))
            throw new Error(
              `after the run with ${REGISTRATION_NAMES[want]} the ${b.name} was admitted another way`,
            );
          results[i]!.runs[want].push(r);
          await emptyNamespace(core);
        }
      }
      ctx.progress(
        `admission: round ${round + 1}/${plan.rounds}: ${results.map((b) => `${b.name} ${b.runs.webhook.at(-1)!.perSecond.toFixed(0)} netmesh, ${b.runs.bare.at(-1)!.perSecond.toFixed(0)} bare, ${b.runs.none.at(-1)!.perSecond.toFixed(0)} none`).join('; ')} creates/s`,
      );
    }
    await set('webhook');

    const runs: AdmissionRuns = {
      concurrency: CONCURRENCY,
      seconds: plan.seconds,
      rounds: plan.rounds,
      bodies: results,
    };
    const summaries = results.map(summarizeAdmission);
    return {
      tables: admissionTables(runs, summaries),
      targets: admissionTargets(summaries),
      results: { ...runs, summaries },
      charts: [],
    };
  } finally {
    client?.close();
    await webhook?.stop();
    await bare?.stop();
    removeToken?.();
    if (!cluster.owned) {
      await core.deleteNamespace({ name: APP_NS }).catch(() => {});
      if (saved) await admission.deleteMutatingWebhookConfiguration({ name: configName }).catch(() => {});
      if (bareConfig)
        await admission.deleteMutatingWebhookConfiguration({ name: `${configName}-bare` }).catch(() => {});
    }
  }
}

export const admissionArea: BenchArea = {
  name: 'admission',
  summary:
    "Pod creates/s through the apiserver with netmesh's webhook, a bare webhook making the same mutation, and none",
  needsCluster: true,
  run,
};
