// Leaves the machine as the node found it: processes, Pod sandboxes, containers, mounts,
// cgroups, the bridge, routes, iptables chains, sysctls and state directories. Synchronous, so
// it runs from an exit handler and from the detached reaper as well as from a normal stop, and
// idempotent, so a later `cluster:up` can run it over the leftovers of a crashed one. It works
// from the state file startNode writes before it changes anything.
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { CGROUP_ROOT, NODE_NETWORK, type NodePaths } from './config.ts';

export interface NodeState {
  /** The process that owns the node (the harness). */
  owner: number;
  /** Process groups of the node's daemons, filled in as they start. */
  pgids: { containerd?: number; kubelet?: number; kubeProxy?: number };
  bins: { nodeCleanup: string; kubeProxy: string };
  paths: NodePaths;
  /** Values of the sysctls the node may change, as found. */
  sysctls: Record<string, string>;
  preexisting: {
    netns: string[];
    netnsDir: boolean;
    varLibCni: boolean;
    varLogContainers: boolean;
    /** Which of FIXED_DIRS existed (absent in state files of older versions: leave them all). */
    fixedDirs?: string[];
  };
}

export const NETNS_DIRS = ['/run/netns', '/var/run/netns'];
const CNI_CACHE = '/var/lib/cni';
const CONTAINER_LOG_LINKS = '/var/log/containers';
/**
 * Directories the kubelet and containerd 1.6 create whatever their root and state flags say:
 * the kubelet's device-plugin socket directory (fixed by the device plugin API) and the shims'
 * socket directory (containerd's compiled-in state dir). Parents before children.
 */
export const FIXED_DIRS = [
  '/var/lib/kubelet',
  '/var/lib/kubelet/device-plugins',
  '/run/containerd',
  '/run/containerd/s',
];
const KUBELET_REGISTRATION_SOCKET = '/var/lib/kubelet/device-plugins/kubelet.sock';

export function readNodeState(stateFile: string): NodeState | undefined {
  try {
    return JSON.parse(readFileSync(stateFile, 'utf8')) as NodeState;
  } catch {
    return undefined;
  }
}

/** True while `pid` runs; a zombie (killed, not yet reaped by our blocked event loop) is gone. */
export function isAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function killGroup(pgid: number | undefined, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (!pgid) return;
  try {
    process.kill(-pgid, signal);
  } catch {
    // gone already
  }
}

function waitGone(pids: (number | undefined)[], ms: number): void {
  const deadline = Date.now() + ms;
  while (pids.some(isAlive) && Date.now() < deadline) sleepSync(50);
}

/** Mount points of the cgroup hierarchies (v1 controllers and/or the v2 unified one). */
export function cgroupMounts(): string[] {
  return mountinfo()
    .filter((m) => m.fstype === 'cgroup' || m.fstype === 'cgroup2')
    .map((m) => m.mountPoint);
}

export interface MountEntry {
  mountPoint: string;
  fstype: string;
}

export function mountinfo(): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (!line) continue;
    const fields = line.split(' ');
    const sep = fields.indexOf('-');
    const mountPoint = (fields[4] ?? '').replace(/\\(\d{3})/g, (_, o: string) =>
      String.fromCharCode(parseInt(o, 8)),
    );
    out.push({ mountPoint, fstype: fields[sep + 1] ?? '' });
  }
  return out;
}

/** Every cgroup directory below the node's root, deepest first. */
function nodeCgroups(): string[] {
  const dirs: string[] = [];
  const visit = (dir: string): void => {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(dir, e);
      try {
        if (lstatSync(p).isDirectory()) visit(p);
      } catch {
        // raced with removal
      }
    }
    dirs.push(dir);
  };
  for (const mp of cgroupMounts()) {
    const root = join(mp, CGROUP_ROOT);
    if (existsSync(root)) visit(root);
  }
  return dirs;
}

/** Kills every process in the node's cgroups: containers outlive a killed shim otherwise. */
function killCgroupProcesses(): void {
  for (let round = 0; round < 50; round++) {
    let found = 0;
    for (const dir of nodeCgroups()) {
      let procs: string[] = [];
      try {
        procs = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
      } catch {
        continue;
      }
      for (const pid of procs) {
        found++;
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // exited
        }
      }
    }
    if (found === 0) return;
    sleepSync(100);
  }
}

/** containerd's shims run in their own process groups; find them by our socket path. */
function killShims(socket: string): void {
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes('containerd-shim') && cmd.includes(socket)) process.kill(Number(pid), 'SIGKILL');
    } catch {
      // exited
    }
  }
}

/** Deletes every iptables rule and chain named KUBE-* or CNI-* (after kube-proxy --cleanup). */
function removeKubeChains(): void {
  for (const cmd of ['iptables', 'ip6tables']) {
    for (const table of ['filter', 'nat', 'mangle']) {
      const res = spawnSync(cmd, ['-w', '5', '-t', table, '-S'], { encoding: 'utf8' });
      if (res.status !== 0) continue;
      const lines = res.stdout.split('\n');
      const ours = (chain: string): boolean => chain.startsWith('KUBE-') || chain.startsWith('CNI-');
      for (const line of lines) {
        const m = /^-A (\S+) (.*)$/.exec(line);
        if (!m || ours(m[1]!)) continue;
        const target = /-j (\S+)/.exec(m[2]!)?.[1];
        if (target && ours(target))
          spawnSync(cmd, ['-w', '5', '-t', table, '-D', m[1]!, ...splitArgs(m[2]!)]);
      }
      const chains = lines.map((l) => /^-N (\S+)$/.exec(l)?.[1]).filter((c): c is string => !!c && ours(c));
      for (const c of chains) spawnSync(cmd, ['-w', '5', '-t', table, '-F', c]);
      for (const c of chains) spawnSync(cmd, ['-w', '5', '-t', table, '-X', c]);
    }
  }
}

/** Splits an iptables -S rule into arguments, keeping quoted comments whole. */
export function splitArgs(rule: string): string[] {
  const args: string[] = [];
  for (const m of rule.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)) args.push(m[1] !== undefined ? m[1] : m[2]!);
  return args;
}

function underAny(path: string, roots: string[]): boolean {
  return roots.some((r) => path === r || path.startsWith(`${r}/`));
}

/** The kubelet first, or it would restart the sandboxes being removed; kube-proxy with it. */
function stopNodeAgents(state: NodeState): void {
  killGroup(state.pgids.kubelet);
  killGroup(state.pgids.kubeProxy);
  waitGone([state.pgids.kubelet, state.pgids.kubeProxy], 5000);
}

/**
 * Every Pod sandbox through the CRI while containerd runs (CNI DEL releases each Pod's veth and
 * address and unmounts its network namespace); then containerd, its shims and whatever is
 * left in the node's cgroups.
 */
function stopContainers(state: NodeState, notes: string[]): void {
  const { paths } = state;
  if (
    isAlive(state.pgids.containerd) &&
    existsSync(paths.containerdSocket) &&
    existsSync(state.bins.nodeCleanup)
  ) {
    const res = spawnSync(state.bins.nodeCleanup, [`unix://${paths.containerdSocket}`], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    if (res.status !== 0)
      notes.push(`CRI cleanup: ${(res.stderr || res.stdout || '').trim().split('\n')[0]}`);
  }
  killGroup(state.pgids.containerd, 'SIGTERM');
  waitGone([state.pgids.containerd], 5000);
  killGroup(state.pgids.containerd);
  killShims(paths.containerdSocket);
  killCgroupProcesses();
}

/** Service rules: kube-proxy's own cleanup, then anything named like it (the kubelet's canaries). */
function removeServiceRules(state: NodeState): void {
  if (existsSync(state.bins.kubeProxy))
    spawnSync(state.bins.kubeProxy, ['--cleanup', '--v=0'], { stdio: 'ignore', timeout: 30_000 });
  removeKubeChains();
}

/** Container root filesystems, volumes, shm, and the network namespaces the node created. */
function unmountAll(state: NodeState): void {
  const newNetns = NETNS_DIRS.flatMap((d) => {
    try {
      return readdirSync(d)
        .filter((n) => n.startsWith('cni-') && !state.preexisting.netns.includes(n))
        .map((n) => join(d, n));
    } catch {
      return [];
    }
  });
  const roots = [state.paths.root, state.paths.run, ...newNetns];
  const mounts = mountinfo()
    .map((m) => m.mountPoint)
    .filter((mp) => underAny(mp, roots))
    .sort((a, b) => b.length - a.length);
  for (const mp of mounts) spawnSync('umount', ['-l', mp], { stdio: 'ignore' });
  for (const ns of newNetns) rmSync(ns, { force: true });
  if (state.preexisting.netnsDir) return;
  try {
    if (readdirSync(NETNS_DIRS[0]!).length === 0) rmdirSync(NETNS_DIRS[0]!);
  } catch {
    // absent
  }
}

/** The bridge (the veths went with their namespaces), the route, cgroups and sysctls. */
function restoreHost(state: NodeState, notes: string[]): void {
  spawnSync('ip', ['link', 'delete', NODE_NETWORK.bridge], { stdio: 'ignore' });
  spawnSync('ip', ['route', 'delete', 'blackhole', NODE_NETWORK.serviceCidr], { stdio: 'ignore' });
  for (const dir of nodeCgroups()) {
    try {
      rmdirSync(dir);
    } catch (err) {
      notes.push(`cgroup ${dir}: ${(err as Error).message}`);
    }
  }
  for (const [name, value] of Object.entries(state.sysctls)) {
    try {
      const file = `/proc/sys/${name.replaceAll('.', '/')}`;
      if (readFileSync(file, 'utf8').trim() !== value) writeFileSync(file, value);
    } catch {
      // not present on this kernel
    }
  }
}

/** The node's roots, and what the kubelet and CNI write outside them. */
function removeFiles(state: NodeState): void {
  cleanContainerLogLinks(state.paths.podLogsDir, state.preexisting.varLogContainers);
  if (!state.preexisting.varLibCni) rmSync(CNI_CACHE, { recursive: true, force: true });
  else removeCniCacheEntries();
  rmSync(state.paths.run, { recursive: true, force: true });
  rmSync(state.paths.root, { recursive: true, force: true });
  removeFixedDirs(state.preexisting.fixedDirs);
}

/**
 * The kubelet's registration socket (one kubelet per machine: with the node stopped it is ours
 * and dead), then the fixed directories the node created, if nothing else has put files there.
 */
function removeFixedDirs(preexisting: string[] | undefined): void {
  if (!preexisting) return;
  try {
    if (lstatSync(KUBELET_REGISTRATION_SOCKET).isSocket()) unlinkSync(KUBELET_REGISTRATION_SOCKET);
  } catch {
    // absent
  }
  for (const dir of [...FIXED_DIRS].reverse()) {
    if (preexisting.includes(dir)) continue;
    try {
      if (readdirSync(dir).length === 0) rmdirSync(dir);
    } catch {
      // absent
    }
  }
}

/** Tears the node down; safe to call any number of times, with the node half-started or gone. */
export function teardownNodeSync(state: NodeState): string[] {
  const notes: string[] = [];
  stopNodeAgents(state);
  stopContainers(state, notes);
  removeServiceRules(state);
  unmountAll(state);
  restoreHost(state, notes);
  removeFiles(state);
  return notes;
}

function cleanContainerLogLinks(podLogsDir: string, preexisting: boolean): void {
  if (!existsSync(CONTAINER_LOG_LINKS)) return;
  for (const name of readdirSync(CONTAINER_LOG_LINKS)) {
    const p = join(CONTAINER_LOG_LINKS, name);
    try {
      if (lstatSync(p).isSymbolicLink() && readlinkSync(p).startsWith(podLogsDir)) unlinkSync(p);
    } catch {
      // raced
    }
  }
  if (!preexisting && readdirSync(CONTAINER_LOG_LINKS).length === 0) rmdirSync(CONTAINER_LOG_LINKS);
}

function removeCniCacheEntries(): void {
  const results = join(CNI_CACHE, 'results');
  if (!existsSync(results)) return;
  for (const name of readdirSync(results)) {
    if (name.startsWith(`${NODE_NETWORK.cniNetworkName}-`)) rmSync(join(results, name), { force: true });
  }
}

/**
 * A table's `iptables -S` lines without the built-in chains' default policy (`-P INPUT ACCEPT`):
 * a table lists those as soon as it exists, and it can come to exist during a run without the
 * node changing anything (the kernel loads a table on first use; on a fresh machine the node's
 * packages install iptables itself after the first fingerprint). Any other policy still counts.
 */
export function iptablesFingerprint(lines: string[]): string[] {
  return lines.filter((r) => !/^-P \S+ ACCEPT$/.test(r));
}

/** A quick fingerprint of what the node touches, to prove teardown restored it. */
export function hostFingerprint(): Record<string, string[]> {
  const ls = (d: string): string[] => {
    try {
      return readdirSync(d).sort();
    } catch {
      return [];
    }
  };
  const out = (cmd: string, args: string[]): string[] => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.split('\n').filter(Boolean) : [];
  };
  return {
    links: out('ip', ['-o', 'link', 'show']).map((l) => l.split(':')[1]!.trim().split('@')[0]!),
    routes: out('ip', ['route', 'show', 'table', 'all']).filter((r) => !r.includes('linkdown')),
    mounts: mountinfo()
      .map((m) => m.mountPoint)
      .filter((m) => !m.startsWith('/proc') && !m.startsWith('/sys/fs/cgroup/'))
      .sort(),
    cgroups: cgroupMounts().flatMap((mp) =>
      existsSync(join(mp, CGROUP_ROOT)) ? [join(mp, CGROUP_ROOT)] : [],
    ),
    iptables: ['iptables', 'ip6tables'].flatMap((c) =>
      ['filter', 'nat', 'mangle'].flatMap((t) =>
        iptablesFingerprint(out(c, ['-w', '5', '-t', t, '-S'])).map((r) => `${c} ${t} ${r}`),
      ),
    ),
    netns: NETNS_DIRS.flatMap((d) => ls(d).map((n) => join(d, n))),
    dirs: [
      '/var/lib/netmesh-node',
      '/run/netmesh-node',
      CNI_CACHE,
      CONTAINER_LOG_LINKS,
      ...FIXED_DIRS,
      KUBELET_REGISTRATION_SOCKET,
    ].filter((d) => existsSync(d)),
    sysctls: [
      'net.ipv4.ip_forward',
      'net.bridge.bridge-nf-call-iptables',
      'net.ipv4.conf.all.route_localnet',
    ].map((s) => {
      try {
        return `${s}=${readFileSync(`/proc/sys/${s.replaceAll('.', '/')}`, 'utf8').trim()}`;
      } catch {
        return `${s}=-`;
      }
    }),
    processes: readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .flatMap((p) => {
        try {
          const comm = readFileSync(`/proc/${p}/comm`, 'utf8').trim();
          if (/^(kubelet|kube-proxy|containerd|containerd-shim|pause|envoy-standin)/.test(comm))
            return [comm];
          // Control planes without a node (NETMESH_NODE=0) may run beside this one: count only
          // ours (children of this process) and orphans, which is what a failed stop leaves.
          if (/^(etcd|kube-apiserver)/.test(comm)) {
            const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
            const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
            return ppid === 1 || ppid === process.pid ? [comm] : [];
          }
          return [];
        } catch {
          return [];
        }
      })
      .sort(),
  };
}

/** What differs between two fingerprints (empty when the machine is as it was). */
export function fingerprintDiff(before: Record<string, string[]>, after: Record<string, string[]>): string[] {
  const diffs: string[] = [];
  for (const key of Object.keys(before)) {
    const b = new Set(before[key]);
    const a = new Set(after[key]);
    for (const x of a) if (!b.has(x)) diffs.push(`${key}: left behind ${x}`);
    for (const x of b) if (!a.has(x)) diffs.push(`${key}: removed ${x}`);
  }
  return diffs;
}
