// What the local node needs from the machine, and the few commands it runs there. The node is
// real (containerd, runc, the CNI plugins, iptables), so it needs Linux, root, and those
// programs; on Debian or Ubuntu as root, missing ones are installed with apt (said in one line).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

/** Debian/Ubuntu package → a file it installs that the node uses. */
const PACKAGES: Record<string, string> = {
  containerd: '/usr/bin/containerd',
  runc: '/usr/sbin/runc',
  'containernetworking-plugins': '/usr/lib/cni/bridge',
  iptables: '/usr/sbin/iptables',
  'busybox-static': '/bin/busybox',
};

export const CNI_BIN_DIR = '/usr/lib/cni';

/** Why a node cannot run on this machine, or undefined when it can. */
export function nodeUnsupportedReason(): string | undefined {
  if (process.env['NETMESH_NODE'] === '0') return 'the local node is disabled (NETMESH_NODE=0)';
  if (process.platform !== 'linux') return `a local node needs Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0)
    return 'a local node needs root (kubelet, containerd and CNI manage mounts, cgroups and network devices)';
  if (!existsSync('/sys/fs/cgroup')) return 'a local node needs cgroups (/sys/fs/cgroup is missing)';
  return undefined;
}

function isDebianLike(): boolean {
  try {
    const osr = readFileSync('/etc/os-release', 'utf8');
    return /^(ID|ID_LIKE)=.*\b(debian|ubuntu)\b/m.test(osr);
  } catch {
    return false;
  }
}

/**
 * Installs the node's packages that are missing. Throws with the package list when it cannot
 * (not Debian-like, or apt fails).
 */
export function ensureNodePackages(log: (s: string) => void): void {
  ensureDebianPackages(PACKAGES, "the local node's packages", log);
}

/**
 * Installs, with apt, the packages of `packages` (Debian package → a file it installs) whose
 * file is missing, saying so in one line through `log`. Throws naming them when it cannot: not
 * Debian or Ubuntu, not root, or apt failed. For `purpose` ("the local node's packages").
 */
export function ensureDebianPackages(
  packages: Record<string, string>,
  purpose: string,
  log: (s: string) => void,
): void {
  const missing = Object.entries(packages)
    .filter(([, file]) => !existsSync(file))
    .map(([pkg]) => pkg);
  if (missing.length === 0) return;
  if (!isDebianLike() || process.getuid?.() !== 0) {
    throw new Error(`${purpose} need ${missing.join(', ')}: install them with your package manager`);
  }
  log(`installing ${purpose} with apt: ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = (): ReturnType<typeof spawnSync> =>
    spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
      env,
      encoding: 'utf8',
    });
  let res = install();
  if (res.status !== 0) {
    // A fresh machine may have no package lists yet.
    spawnSync('apt-get', ['update', '-qq'], { env, stdio: 'ignore' });
    res = install();
  }
  if (res.status !== 0) {
    const tail = String(res.stderr ?? '')
      .trim()
      .split('\n')
      .slice(-3)
      .join(' ');
    throw new Error(`apt-get install ${missing.join(' ')} failed: ${tail}`);
  }
}

/** Runs a command, returning stdout; throws with its stderr. */
export function run(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): string {
  try {
    return execFileSync(cmd, args, {
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? 60_000,
      ...(opts.input !== undefined ? { input: opts.input } : {}),
    });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
}

/** Runs a command for its effect during cleanup: failures (already gone) are expected. */
export function tryRun(cmd: string, args: string[], timeoutMs = 30_000): boolean {
  const res = spawnSync(cmd, args, { stdio: 'ignore', timeout: timeoutMs });
  return res.status === 0;
}

export function readSysctl(name: string): string | undefined {
  try {
    return readFileSync(`/proc/sys/${name.replaceAll('.', '/')}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export function writeSysctl(name: string, value: string): void {
  writeFileSync(`/proc/sys/${name.replaceAll('.', '/')}`, value);
}
