// The client configuration, found the way kubectl finds it (client-go's clientcmd loading
// rules), so `netmesh` talks to the cluster the user's kubectl talks to:
//   1. --kubeconfig (or NETMESH_KUBECONFIG, the flag's environment variable);
//   2. KUBECONFIG, a list of files separated by ':' merged in order (the first file to set a
//      value wins; files that do not exist are skipped, as kubectl does);
//   3. ~/.kube/config when it exists;
//   4. the in-cluster ServiceAccount when running in a Pod.
// --context picks another context of that configuration. The source is reported, and daemons
// log it, so nobody has to guess which cluster a process went to.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { UserFacingError } from './errors.ts';
import { reuseConnections } from './kube-connections.ts';

export type KubeConfigSource =
  | { kind: 'flag'; paths: string[] }
  | { kind: 'env'; paths: string[]; skipped: string[] }
  | { kind: 'home'; paths: string[] }
  | { kind: 'in-cluster' };

export interface KubeConfigRequest {
  /** --kubeconfig (or its environment variable). */
  kubeconfig?: string | undefined;
  /** --context. */
  context?: string | undefined;
  /** Defaults to process.env. */
  env?: Record<string, string | undefined>;
  /** Defaults to os.homedir(). */
  homeDir?: string;
  /** Defaults to fs.existsSync. */
  exists?: (path: string) => boolean;
}

const SA_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** Which configuration the request resolves to (no file is read). Throws UserFacingError when none. */
export function chooseKubeConfigSource(req: KubeConfigRequest): KubeConfigSource {
  const env = req.env ?? process.env;
  const exists = req.exists ?? existsSync;
  if (req.kubeconfig) {
    if (!exists(req.kubeconfig)) {
      throw new UserFacingError(
        `cannot load kubeconfig ${req.kubeconfig}: no such file`,
        'check the --kubeconfig path',
      );
    }
    return { kind: 'flag', paths: [req.kubeconfig] };
  }
  const list = (env['KUBECONFIG'] ?? '').split(delimiter).filter(Boolean);
  if (list.length > 0) {
    const paths = list.filter((p) => exists(p));
    if (paths.length === 0) {
      throw new UserFacingError(
        `KUBECONFIG names no existing file (${list.join(delimiter)})`,
        'fix KUBECONFIG or pass --kubeconfig <path>',
      );
    }
    return { kind: 'env', paths, skipped: list.filter((p) => !paths.includes(p)) };
  }
  const home = join(req.homeDir ?? homedir(), '.kube', 'config');
  if (exists(home)) return { kind: 'home', paths: [home] };
  if (env['KUBERNETES_SERVICE_HOST']) return { kind: 'in-cluster' };
  throw new UserFacingError(
    'no kubeconfig found and not running inside a cluster',
    'pass --kubeconfig <path> (or set KUBECONFIG), create ~/.kube/config, or run netmesh in a Pod',
  );
}

export interface ResolvedKubeConfig {
  kc: KubeConfig;
  source: KubeConfigSource;
  /** The context in use (undefined in-cluster). */
  context: string | undefined;
  /** The context's namespace, or the Pod's own in-cluster; undefined when none is set. */
  namespace: string | undefined;
  /** The apiserver URL. */
  server: string;
}

function loadFile(path: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    kc.loadFromFile(path);
  } catch (err) {
    throw new UserFacingError(
      `cannot load kubeconfig ${path}: ${(err as Error).message.split('\n')[0]}`,
      'check that the file is a kubeconfig (kubectl config view --kubeconfig <path>)',
    );
  }
  return kc;
}

/** kubectl's merge: the first file to define a name (or the current context) wins. */
function merge(into: KubeConfig, from: KubeConfig): void {
  if (!into.currentContext && from.currentContext) into.setCurrentContext(from.currentContext);
  for (const c of from.clusters) if (!into.clusters.some((x) => x.name === c.name)) into.addCluster(c);
  for (const u of from.users) if (!into.users.some((x) => x.name === u.name)) into.addUser(u);
  for (const c of from.contexts) if (!into.contexts.some((x) => x.name === c.name)) into.addContext(c);
}

/** A short description of where the configuration came from, for logs and `netmesh check`. */
export function describeSource(source: KubeConfigSource): string {
  switch (source.kind) {
    case 'flag':
      return `kubeconfig ${source.paths[0]}`;
    case 'env':
      return `KUBECONFIG ${source.paths.join(delimiter)}`;
    case 'home':
      return `kubeconfig ${source.paths[0]}`;
    case 'in-cluster':
      return 'in-cluster ServiceAccount';
  }
}

export function resolveKubeConfig(req: KubeConfigRequest = {}): ResolvedKubeConfig {
  const source = chooseKubeConfigSource(req);
  let kc: KubeConfig;
  if (source.kind === 'in-cluster') {
    kc = new KubeConfig();
    kc.loadFromCluster();
  } else {
    kc = loadFile(source.paths[0]!);
    for (const p of source.paths.slice(1)) merge(kc, loadFile(p));
  }
  if (req.context) {
    if (!kc.getContextObject(req.context)) {
      const names = kc.contexts.map((c) => c.name);
      throw new UserFacingError(
        `context "${req.context}" not found in ${describeSource(source)}`,
        names.length > 0 ? `contexts: ${names.join(', ')}` : 'the configuration has no contexts',
      );
    }
    kc.setCurrentContext(req.context);
  }
  const contextName = kc.getCurrentContext();
  const context = contextName ? kc.getContextObject(contextName) : null;
  if (source.kind !== 'in-cluster' && !context) {
    throw new UserFacingError(
      `${describeSource(source)} has no current context`,
      'pass --context <name>, or `kubectl config use-context <name>`',
    );
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) {
    throw new UserFacingError(
      `${describeSource(source)}: context "${contextName}" names no cluster with a server`,
      'fix the kubeconfig, or pass --context <name>',
    );
  }
  let namespace = context?.namespace || undefined;
  if (!namespace && source.kind === 'in-cluster') {
    try {
      namespace = readFileSync(SA_NAMESPACE_FILE, 'utf8').trim() || undefined;
    } catch {
      namespace = undefined;
    }
  }
  return {
    // One keep-alive connection pool for every client built from it (see kube-connections.ts).
    kc: reuseConnections(kc),
    source,
    context: source.kind === 'in-cluster' ? undefined : contextName,
    namespace,
    server: cluster.server,
  };
}

/**
 * The KubeConfig alone, resolved as above from an explicit path (or none). Kept for callers
 * that only have a path (webhook/start.ts).
 */
export function loadKubeConfig(kubeconfigPath: string | undefined): KubeConfig {
  return resolveKubeConfig({ kubeconfig: kubeconfigPath }).kc;
}
