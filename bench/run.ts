// `npm run bench`: netmesh's performance claims, each as a ratio against a baseline measured in
// the same run (this machine is shared and noisy, so absolute figures mean little), one area at
// a time, one table per area.
//
//   npm run bench                     every area; checks the targets (exit 1 when one is missed),
//                                     writes bench/results.json, the charts (bench/*.svg) and the
//                                     README's Performance section
//   npm run bench -- --quick          the same code paths with short runs and small N, in a couple
//                                     of minutes; targets are printed, not enforced (noise must not
//                                     fail a test run); writes bench/results.quick.json and
//                                     bench/*.quick.svg (git-ignored); fails only when something
//                                     breaks
//   npm run bench -- --only webhook   some areas only (comma-separated); never touches the README
//   npm run bench -- --profile <dir>  CPU profiles of the processes under test (node --cpu-prof)
//
// Areas: internals (in-process micro-benchmarks), webhook (a real `netmesh webhook` under load),
// admission (the webhook's cost to the apiserver's Pod creates), operator (a real `netmesh
// operator` on the control plane).
// A new area implements BenchArea (lib/area.ts) and is added to AREAS.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { acquireCluster, type TestCluster, unavailableReason } from '../cluster/target.ts';
import { DOCKERFILE, entrypointNodeArgs, parseFinalStage } from '../deploy/image/build.ts';
import { bundleAppTree } from '../deploy/image/bundle.ts';
import { REPO_ROOT } from '../deploy/image/rootfs.ts';
import { UserFacingError } from '../lib/errors.ts';
import { admissionArea } from './admission/area.ts';
import { internalsArea } from './internals.ts';
import { type AreaResult, type BenchArea, type BenchContext, type Target, targetMet } from './lib/area.ts';
import { describeMachine, machineLine } from './lib/machine.ts';
import { replaceSection } from './lib/readme.ts';
import { renderMarkdown, renderText, type Table } from './lib/table.ts';
import { operatorArea } from './operator/area.ts';
import { webhookArea } from './webhook/area.ts';

const AREAS: BenchArea[] = [internalsArea, webhookArea, admissionArea, operatorArea];

const benchDir = new URL('./', import.meta.url);
const readmeFile = new URL('../README.md', import.meta.url);

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    profile: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(
    [
      'usage: npm run bench [-- --quick] [-- --only <area,...>] [-- --profile <dir>]',
      '',
      'areas:',
      ...AREAS.map((a) => `  ${a.name.padEnd(10)} ${a.summary}`),
    ].join('\n'),
  );
  process.exit(0);
}
const quick = values.quick;
const only = values.only?.split(',').map((s) => s.trim());
const unknown = only?.filter((name) => !AREAS.some((a) => a.name === name)) ?? [];
if (unknown.length > 0) {
  console.error(`bench: unknown area ${unknown.join(', ')} (areas: ${AREAS.map((a) => a.name).join(', ')})`);
  process.exit(2);
}
const areas = AREAS.filter((a) => !only || only.includes(a.name));
const command = `npm run bench${quick || only || values.profile ? ` --${quick ? ' --quick' : ''}${only ? ` --only ${only.join(',')}` : ''}${values.profile ? ` --profile ${values.profile}` : ''}` : ''}`;

const startedAt = new Date();
const t0 = performance.now();
const workDir = mkdtempSync(join(tmpdir(), 'netmesh-bench-'));
const profileDir = values.profile ? resolve(values.profile) : undefined;
if (profileDir) mkdirSync(profileDir, { recursive: true });
const progress = (line: string): void => console.error(`# ${line}`);
// One apiserver for every area of the run: a control plane start is 5-10 s of a quick run.
let cluster: Promise<TestCluster> | undefined;
// netmesh as the image ships it: bundled to JavaScript (deploy/image/bundle.ts, a second or so).
const appTree = await bundleAppTree(REPO_ROOT, join(workDir, 'app'));
const ctx: BenchContext = {
  quick,
  progress,
  workDir,
  netmeshBin: join(appTree, 'bin', 'netmesh.js'),
  netmeshNodeArgs: entrypointNodeArgs(parseFinalStage(readFileSync(DOCKERFILE, 'utf8'))),
  ...(profileDir ? { profileDir } : {}),
  cluster: () => {
    cluster ??= acquireCluster({ node: false, log: progress });
    return cluster.then((c) => ({ ...c, stop: async () => {} }));
  },
};
const machine = describeMachine();
console.log(`netmesh benchmarks${quick ? ' (--quick: short runs, targets not enforced)' : ''}`);
console.log(`machine: ${machineLine(machine)}`);
console.log(`date: ${startedAt.toISOString()}\n`);

const done: { area: BenchArea; result: AreaResult }[] = [];
const failures: string[] = [];
// The selected target cannot run here (NETMESH_E2E_CLUSTER=k3s without Docker): say so and run
// what can run, as the integration suites do; never pretend those areas passed.
const noCluster = areas.some((a) => a.needsCluster) ? await unavailableReason() : undefined;
if (noCluster) console.log(`areas needing an apiserver SKIPPED: ${noCluster}\n`);
try {
  for (const area of areas.filter((a) => !(noCluster && a.needsCluster))) {
    ctx.progress(`${area.name}: ${area.summary}`);
    try {
      const result = await area.run(ctx);
      done.push({ area, result });
      for (const table of result.tables) console.log(`${renderText(table)}\n`);
    } catch (err) {
      const message = err instanceof UserFacingError ? err.oneLine() : ((err as Error).stack ?? String(err));
      failures.push(`${area.name}: ${message}`);
      console.log(`${area.name}: FAILED\n  ${message.split('\n').join('\n  ')}\n`);
    }
  }
} finally {
  rmSync(workDir, { recursive: true, force: true });
  await cluster?.then(
    (c) => c.stop(),
    () => {},
  );
}

const targets: Target[] = done.flatMap((d) => d.result.targets);
const fmt = (t: Target, v: number) => (t.unit === 'ratio' ? v.toFixed(2) : `${v.toFixed(0)} ${t.unit}`);
const targetTable: Table = {
  title: quick ? 'targets (not enforced with --quick: short runs are noisy)' : 'targets',
  columns: ['area', 'target', 'measured', 'limit', quick ? 'would be' : 'result'],
  rows: targets.map((t) => [
    t.area,
    t.what,
    fmt(t, t.measured),
    `${t.kind === 'min' ? '>=' : '<='} ${fmt(t, t.limit)}`,
    targetMet(t) ? 'met' : 'MISSED',
  ]),
};
console.log(renderText(targetTable));
const seconds = (performance.now() - t0) / 1000;
console.log(`\n${done.length} area(s) in ${seconds.toFixed(0)} s`);

const suffix = quick ? '.quick' : '';
const results = {
  schema: 1,
  date: startedAt.toISOString(),
  command,
  quick,
  machine,
  durationSeconds: Math.round(seconds),
  targets: targets.map((t) => ({ ...t, met: targetMet(t) })),
  failures,
  areas: Object.fromEntries(done.map((d) => [d.area.name, d.result.results])),
};
const resultsFile = fileURLToPath(new URL(`results${suffix}.json`, benchDir));
writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
// In the project's formatting, so that `npm run lint` accepts the committed results as written
// (the quick run's file is git-ignored, which biome skips, and never committed).
if (!quick) {
  try {
    execFileSync(
      fileURLToPath(new URL('../node_modules/.bin/biome', import.meta.url)),
      ['format', '--write', resultsFile],
      { stdio: 'ignore' },
    );
  } catch {
    console.error(`# could not format ${resultsFile} with biome; npm run format will`);
  }
}
const chartFiles: string[] = [];
for (const d of done) {
  for (const chart of d.result.charts) {
    const file = quick ? chart.file.replace(/(\.[^.]+)$/, `${suffix}$1`) : chart.file;
    writeFileSync(new URL(file, benchDir), chart.svg);
    chartFiles.push(file);
  }
}
console.log(`wrote bench/results${suffix}.json${chartFiles.map((f) => `, bench/${f}`).join('')}`);

if (!quick && !only && !noCluster && failures.length === 0) {
  const section = [
    `Measured by \`${command}\` on ${startedAt.toISOString().slice(0, 10)}: ${machineLine(machine)}. Every ratio compares netmesh with a baseline measured in the same run (the machine is shared, so absolute figures drift); the raw figures are in [bench/results.json](bench/results.json).`,
    '',
    ...done.flatMap((d) => [
      ...d.result.tables.flatMap((t) => [renderMarkdown(t), '']),
      ...d.result.charts.flatMap((c) => [`![${c.file}](bench/${c.file})`, '']),
    ]),
    renderMarkdown(targetTable),
  ].join('\n');
  writeFileSync(readmeFile, replaceSection(readFileSync(readmeFile, 'utf8'), section));
  console.log('updated the Performance section of README.md');
}

const missed = targets.filter((t) => !targetMet(t));
if (failures.length > 0) {
  console.log(`\n${failures.length} area(s) failed`);
  process.exit(1);
}
if (!quick && noCluster) {
  console.log('\nareas needing an apiserver were skipped: a full run cannot pass without them');
  process.exit(1);
}
if (!quick && missed.length > 0) {
  console.log(`\n${missed.length} target(s) missed`);
  process.exit(1);
}
