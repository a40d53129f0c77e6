// The `webhook` area: a real `netmesh webhook` process against a bare Node https server, both
// pinned to one core, loaded from the other core over TLS with keep-alive, with the three
// AdmissionReviews captured from the apiserver (bench/fixtures). The servers are measured in
// turns (netmesh, baseline, baseline, netmesh, ...) so that the load of a shared machine falls
// on both, and every figure is reported against the baseline of the same round.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureDebianPackages } from '../../cluster/host.ts';
import { UserFacingError } from '../../lib/errors.ts';
import { encodeLikeApiserver } from '../fixtures/encoding.ts';
import { FIXTURE_NAMES, type FixtureName } from '../fixtures/workloads.ts';
import type { AreaResult, BenchArea, BenchContext } from '../lib/area.ts';
import { prepareWebhookEnvironment } from './environment.ts';
import { type LoadgenResult, loadgenBinary, runLoadgen } from './loadgen.ts';
import {
  type BodyRuns,
  FIXED_RATES,
  type MemoryFigures,
  SERVERS,
  type Server,
  summarizeBody,
  type ThroughputRun,
  type WebhookRuns,
  webhookChart,
  webhookResults,
  webhookTables,
  webhookTargets,
} from './report.ts';
import { postReview } from './review-client.ts';
import { type BenchServer, startBaseline, startDependencyFloor, startNetmesh } from './servers.ts';
import { runWrk } from './wrk.ts';

interface Plan {
  /** Throughput: wrk runs per server, alternating. */
  rounds: number;
  warmupSeconds: number;
  throughputSeconds: number;
  /** Latency: runs of the open-loop client, each taking both servers in turns. */
  latencyRounds: number;
  /** Measured seconds per server in one latency run. */
  latencySeconds: number;
  latencySliceSeconds: number;
  latencyWarmupSeconds: number;
  settleSeconds: number;
  connections: number;
}

const FULL: Plan = {
  rounds: 8,
  warmupSeconds: 3,
  throughputSeconds: 5,
  latencyRounds: 3,
  latencySeconds: 12,
  // Short turns: the noise of a shared machine comes in bursts of a fraction of a second, and
  // with turns this short a burst falls on both servers rather than on one.
  latencySliceSeconds: 0.1,
  latencyWarmupSeconds: 2,
  settleSeconds: 5,
  connections: 16,
};

/** The same code paths in under a minute: short runs, two rounds (still one of each order). */
const QUICK: Plan = {
  rounds: 2,
  warmupSeconds: 1,
  throughputSeconds: 2,
  latencyRounds: 2,
  latencySeconds: 1,
  latencySliceSeconds: 0.1,
  latencyWarmupSeconds: 1,
  settleSeconds: 2,
  connections: 16,
};

function pinning(): { server: string[]; client: string[]; pinned: boolean } {
  const taskset = spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0;
  if (taskset && availableParallelism() >= 2) {
    return { server: ['taskset', '-c', '0'], client: ['taskset', '-c', '1'], pinned: true };
  }
  return { server: [], client: [], pinned: false };
}

/**
 * wrk, from the distribution: on Debian or Ubuntu as root it is installed with apt when missing
 * (as the local node's packages are), so `npm test` runs on a fresh machine.
 */
function requireWrk(progress: (line: string) => void): void {
  const found = (): boolean => !spawnSync('wrk', ['--version'], { stdio: 'ignore' }).error;
  if (found()) return;
  try {
    ensureDebianPackages({ wrk: '/usr/bin/wrk' }, "the webhook benchmark's packages", progress);
  } catch (err) {
    throw new UserFacingError(
      `the webhook benchmark needs wrk, which was not found and could not be installed (${(err as Error).message})`,
      'install it (Debian/Ubuntu: apt-get install wrk)',
    );
  }
  if (!found()) {
    throw new UserFacingError(
      'the webhook benchmark needs wrk, which is still not on PATH after installing it',
      'install it (Debian/Ubuntu: apt-get install wrk)',
    );
  }
}

/** Samples each server's RSS while load runs; keeps the largest. */
function rssSampler(servers: BenchServer[], everyMs = 200) {
  const max = new Map<BenchServer, number>(servers.map((s) => [s, 0]));
  let timer: NodeJS.Timeout | undefined;
  return {
    start() {
      timer = setInterval(() => {
        for (const s of servers) {
          try {
            max.set(s, Math.max(max.get(s)!, s.memory().rss));
          } catch {
            // The process is gone; its failure promise reports it.
          }
        }
      }, everyMs);
    },
    stop() {
      clearInterval(timer);
    },
    max: (s: BenchServer) => max.get(s)!,
  };
}

/** netmesh's answer to each fixture, checked: the measured path must be the injecting one. */
async function answersOf(
  netmesh: BenchServer,
  caPem: string,
  bodies: Record<FixtureName, string>,
): Promise<Record<FixtureName, string>> {
  const out = {} as Record<FixtureName, string>;
  for (const name of FIXTURE_NAMES) {
    const sent = JSON.parse(bodies[name]) as { request: { uid: string } };
    const reply = await postReview(netmesh.url, caPem, bodies[name]);
    const review =
      reply.status === 200 ? (JSON.parse(reply.body) as { response?: Record<string, unknown> }) : {};
    const r = review.response;
    if (r?.['uid'] !== sent.request.uid || r?.['allowed'] !== true || r?.['patchType'] !== 'JSONPatch') {
      throw new Error(
        `netmesh did not inject the ${name} fixture (HTTP ${reply.status}): ${reply.body.slice(0, 500)}\n(log: ${netmesh.logFile})`,
      );
    }
    out[name] = reply.body;
  }
  return out;
}

async function run(ctx: BenchContext): Promise<AreaResult> {
  const plan = ctx.quick ? QUICK : FULL;
  requireWrk(ctx.progress);
  const pin = pinning();
  ctx.progress('webhook: building the open-loop load generator (cached after the first run)');
  const loadgen = loadgenBinary();

  const bodies = {} as Record<FixtureName, string>;
  const bodyFiles = {} as Record<FixtureName, string>;
  for (const name of FIXTURE_NAMES) {
    const review = JSON.parse(readFileSync(new URL(`../fixtures/${name}.json`, import.meta.url), 'utf8'));
    bodies[name] = encodeLikeApiserver(review);
    bodyFiles[name] = join(ctx.workDir, `${name}.review.json`);
    writeFileSync(bodyFiles[name], bodies[name]);
  }

  ctx.progress('webhook: preparing the apiserver (cluster/target.ts)');
  const env = await prepareWebhookEnvironment(await ctx.cluster());
  const started: BenchServer[] = [];
  try {
    const t0 = performance.now();
    const netmesh = await startNetmesh({
      env,
      pin: pin.server,
      collector: pin.client,
      dir: ctx.workDir,
      netmeshBin: ctx.netmeshBin,
      nodeArgs: [
        ...ctx.netmeshNodeArgs,
        ...(ctx.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${ctx.profileDir}`] : []),
      ],
    });
    started.push(netmesh);
    const startupSeconds = (performance.now() - t0) / 1000;
    ctx.progress(`webhook: netmesh ready in ${startupSeconds.toFixed(1)} s (${netmesh.url})`);

    const tls = await env.readServingMaterial();
    const caFile = join(ctx.workDir, 'ca.pem');
    writeFileSync(caFile, tls.caPem);
    const answers = await answersOf(netmesh, tls.caPem, bodies);
    const responses = Object.fromEntries(
      FIXTURE_NAMES.map((n) => [
        (JSON.parse(bodies[n]) as { request: { uid: string } }).request.uid,
        answers[n],
      ]),
    );
    const baseline = await startBaseline({
      pin: pin.server,
      dir: ctx.workDir,
      certPem: tls.certPem,
      keyPem: tls.keyPem,
      responses,
    });
    started.push(baseline);
    // What loading netmesh's packages alone holds: the part of the idle RSS netmesh cannot shed.
    const floor = await startDependencyFloor({
      pin: pin.server,
      dir: ctx.workDir,
      netmeshBin: ctx.netmeshBin,
      nodeArgs: ctx.netmeshNodeArgs,
    });
    started.push(floor);
    const servers: Record<Server, BenchServer> = { netmesh, baseline };
    const failed = Promise.race([netmesh.failure, baseline.failure]);
    const guard = <T>(p: Promise<T>): Promise<T> => Promise.race([p, failed]);

    await guard(sleep(plan.settleSeconds * 1000));
    const idle = { netmesh: netmesh.memory().rss, baseline: baseline.memory().rss };
    const dependencyFloorIdle = floor.memory().rss;
    await floor.stop();
    started.splice(started.indexOf(floor), 1);
    const sampler = rssSampler([netmesh, baseline]);
    sampler.start();

    /** One round visits both servers; odd rounds reverse the order (ABBA cancels drift). */
    const order = (round: number): Server[] =>
      round % 2 === 0 ? ['netmesh', 'baseline'] : ['baseline', 'netmesh'];

    const wrk = async (
      server: BenchServer,
      name: FixtureName,
      seconds: number,
      attempt = 1,
    ): Promise<ThroughputRun> => {
      const cpu0 = server.cpuSeconds();
      const r = await guard(
        runWrk({
          url: server.url,
          bodyFile: bodyFiles[name],
          connections: plan.connections,
          seconds,
          pin: pin.client,
        }),
      );
      const cpu = server.cpuSeconds() - cpu0;
      // No answer and no error within a short run: the shared machine starved the server's core
      // (seen with --quick's 1 s warm-up), not a breakage. Try again, longer, before failing.
      if (r.errors === 0 && r.requests === 0 && attempt < 3) {
        ctx.progress(
          `webhook: wrk got no answer from ${server.name} in ${seconds} s; again for ${seconds * 2} s`,
        );
        return wrk(server, name, seconds * 2, attempt + 1);
      }
      if (r.errors > 0 || r.requests === 0) {
        throw new Error(
          `wrk against ${server.name} with the ${name} fixture: ${r.requests} requests, errors ${JSON.stringify(r.errorDetail)}`,
        );
      }
      return {
        requestsPerSecond: r.requestsPerSecond,
        requests: r.requests,
        cpuMicrosPerRequest: (cpu / r.requests) * 1e6,
        serverUtilization: cpu / r.seconds,
      };
    };

    /** Both servers in one run of the open-loop client, in alternating slices. */
    const fixedRate = async (name: FixtureName): Promise<Record<Server, LoadgenResult>> => {
      const all = await guard(
        runLoadgen({
          binary: loadgen,
          targets: SERVERS.map((s) => ({ name: s, url: servers[s].url })),
          caFile,
          bodyFile: bodyFiles[name],
          rate: FIXED_RATES[name],
          seconds: plan.latencySeconds,
          sliceSeconds: plan.latencySliceSeconds,
          warmupSeconds: plan.latencyWarmupSeconds,
          connections: plan.connections,
          pin: pin.client,
        }),
      );
      const expected = Buffer.byteLength(answers[name]);
      for (const s of SERVERS) {
        const r = all[s];
        if (!r || r.errors > 0 || r.ok === 0) {
          throw new Error(
            `fixed-rate run against ${s} with the ${name} fixture: ${r?.errors ?? 'no'} errors (${r?.errorSample.join('; ') ?? 'no result'})`,
          );
        }
        // Both servers must have given the answer checked at the start (netmesh's injection),
        // not another one: a namespace gone from the cache, say, would make netmesh measure a skip.
        if (r.responseBytes !== expected) {
          throw new Error(
            `fixed-rate run against ${s} with the ${name} fixture: answers of ${r.responseBytes} bytes, not the ${expected} of the injection checked at the start (log: ${servers[s].logFile})`,
          );
        }
      }
      return all as Record<Server, LoadgenResult>;
    };

    const runs: BodyRuns[] = [];
    for (const name of FIXTURE_NAMES) {
      ctx.progress(`webhook: ${name} fixture (${bodies[name].length} bytes): warming up`);
      for (const s of SERVERS) await wrk(servers[s], name, plan.warmupSeconds);
      const throughput: Record<Server, ThroughputRun[]> = { netmesh: [], baseline: [] };
      for (let round = 0; round < plan.rounds; round++) {
        for (const s of order(round)) throughput[s].push(await wrk(servers[s], name, plan.throughputSeconds));
        ctx.progress(
          `webhook: ${name} throughput round ${round + 1}/${plan.rounds}: netmesh ${throughput.netmesh.at(-1)!.requestsPerSecond.toFixed(0)}, baseline ${throughput.baseline.at(-1)!.requestsPerSecond.toFixed(0)} req/s`,
        );
      }
      const latency: Record<Server, LoadgenResult[]> = { netmesh: [], baseline: [] };
      for (let round = 0; round < plan.latencyRounds; round++) {
        const r = await fixedRate(name);
        for (const s of SERVERS) latency[s].push(r[s]);
        ctx.progress(
          `webhook: ${name} at ${FIXED_RATES[name]} req/s round ${round + 1}/${plan.latencyRounds}: p99 netmesh ${(r.netmesh.percentilesMicros.p99 / 1000).toFixed(2)}, baseline ${(r.baseline.percentilesMicros.p99 / 1000).toFixed(2)} ms`,
        );
      }
      runs.push({
        name,
        bodyBytes: Buffer.byteLength(bodies[name]),
        responseBytes: Buffer.byteLength(answers[name]),
        throughput,
        latency,
      });
    }
    sampler.stop();
    const memory: Record<Server, MemoryFigures> = {
      netmesh: { idle: idle.netmesh, underLoad: sampler.max(netmesh) },
      baseline: { idle: idle.baseline, underLoad: sampler.max(baseline) },
    };

    const all: WebhookRuns = {
      rounds: plan.rounds,
      throughputSeconds: plan.throughputSeconds,
      latencyRounds: plan.latencyRounds,
      latencySeconds: plan.latencySeconds,
      latencySliceSeconds: plan.latencySliceSeconds,
      connections: plan.connections,
      pinned: pin.pinned,
      startupSeconds,
      bodies: runs,
      memory,
      dependencyFloorIdle,
    };
    const summaries = runs.map(summarizeBody);
    return {
      tables: webhookTables(all, summaries),
      targets: webhookTargets(summaries, memory),
      results: webhookResults(all, summaries),
      charts: [
        webhookChart(
          summaries,
          `open-loop client, latency from the intended send time; ${plan.latencySeconds} s per server in ${plan.latencySliceSeconds} s turns, median of ${plan.latencyRounds} runs`,
        ),
      ],
    };
  } finally {
    for (const s of started.reverse()) await s.stop();
    await env.close();
  }
}

export const webhookArea: BenchArea = {
  name: 'webhook',
  summary: 'a real `netmesh webhook` against a bare Node https server: throughput, latency, memory',
  needsCluster: true,
  run,
};
