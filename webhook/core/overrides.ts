/**
 * Per-Pod overrides of the injected sidecar: an allow-list of Pod annotations (as Istio's
 * `sidecar.istio.io/proxyCPU` and Linkerd's `config.linkerd.io/proxy-cpu-request`) that adjust
 * the one sidecar container without editing the shared template. Each annotation sets one field
 * to one validated value; there is no arbitrary merge. A value that does not validate is not
 * applied: the caller turns the reason into an admission warning naming the annotation and the
 * value, and the template's default stays. Nothing here can make the webhook fail or reject a
 * Pod, and nothing applied here can make the apiserver reject it (request above limit, port
 * clash, malformed quantity or image).
 *
 * The sidecar is the template's first native sidecar (an initContainer, all of which are native
 * sidecars once parseTemplate accepted the template), else its first container.
 */
import type { V1Container } from '@kubernetes/client-node';
import type { SidecarTemplate } from './template.ts';
import { isPlainObject } from './template.ts';

export const OVERRIDE_PREFIX = 'sidecar.netmesh.io/';

export const OVERRIDE_ANNOTATIONS = {
  cpuRequest: `${OVERRIDE_PREFIX}proxy-cpu-request`,
  cpuLimit: `${OVERRIDE_PREFIX}proxy-cpu-limit`,
  memoryRequest: `${OVERRIDE_PREFIX}proxy-memory-request`,
  memoryLimit: `${OVERRIDE_PREFIX}proxy-memory-limit`,
  image: `${OVERRIDE_PREFIX}proxy-image`,
  logLevel: `${OVERRIDE_PREFIX}proxy-log-level`,
  port: `${OVERRIDE_PREFIX}proxy-port`,
} as const;

const KNOWN: readonly string[] = Object.values(OVERRIDE_ANNOTATIONS);

/** Envoy's `--log-level` values (`envoy --help`); `warn` is Envoy's alias of `warning`. */
export const ENVOY_LOG_LEVELS: readonly string[] = [
  'trace',
  'debug',
  'info',
  'warning',
  'warn',
  'error',
  'critical',
  'off',
];

// Kubernetes resource.Quantity (k8s.io/apimachinery/pkg/api/resource/quantity.go): a decimal
// number (digits, digits., .digits or digits.digits) and one suffix: binary SI (Ki..Ei), decimal
// SI (n, u, m, '', k, M, G, T, P, E) or an exponent e/E<signed integer>. The sign is left out:
// requests and limits must not be negative.
const QUANTITY = /^(\+?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$/;
const SUFFIX_SCALE: Record<string, number> = {
  '': 1,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** The quantity's value as a number (precise enough to compare a request with a limit), or undefined. */
export function parseQuantity(text: string): number | undefined {
  const m = QUANTITY.exec(text);
  if (!m) return undefined;
  const mantissa = Number(m[2]);
  const suffix = m[3] ?? '';
  const scale = /^[eE]/.test(suffix) ? 10 ** Number(suffix.slice(1)) : SUFFIX_SCALE[suffix];
  if (scale === undefined || !Number.isFinite(mantissa * scale)) return undefined;
  return mantissa * scale;
}

// Image references as the container runtime parses them (github.com/distribution/reference,
// regexp.go): [domain[:port]/]path[:tag][@digest], path components lowercase.
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:]+\\])(?::[0-9]+)?`;
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*';
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';
const IMAGE_REFERENCE = new RegExp(
  `^((?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*)(?::${TAG})?(?:@${DIGEST})?$`,
);
/** distribution/reference's NameTotalLengthMax. */
const IMAGE_NAME_MAX = 255;

export function isImageReference(text: string): boolean {
  const m = IMAGE_REFERENCE.exec(text);
  return !!m && m[1]!.length <= IMAGE_NAME_MAX;
}

/** A port number in decimal, 1-65535, no sign or leading zero. */
export function parsePort(text: string): number | undefined {
  if (!/^[1-9][0-9]{0,4}$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
}

export interface OverrideResult {
  /** Annotation → value of every override applied, in OVERRIDE_ANNOTATIONS order. */
  applied: Record<string, string>;
  /** One line per annotation not applied: names it, its value and why; the default is kept. */
  warnings: string[];
  /** The template with the sidecar overridden; the input template itself when nothing applied. */
  template: SidecarTemplate;
}

/** True when the Pod carries any annotation of the override prefix (the planner's fast path). */
export function hasOverrideAnnotations(annotations: Record<string, unknown> | undefined): boolean {
  if (annotations === undefined) return false;
  for (const key in annotations) if (key.startsWith(OVERRIDE_PREFIX)) return true;
  return false;
}

function sidecarOf(
  template: SidecarTemplate,
): { list: 'initContainers' | 'containers'; index: number } | undefined {
  const native = template.initContainers.findIndex((c) => c.restartPolicy === 'Always');
  if (native >= 0) return { list: 'initContainers', index: native };
  if (template.containers.length > 0) return { list: 'containers', index: 0 };
  return undefined;
}

function rejected(annotation: string, value: string, why: string): string {
  return `annotation ${annotation}=${JSON.stringify(value)} ignored: ${why}; the template's default is kept`;
}

function quantityOf(value: unknown): number | undefined {
  if (typeof value === 'number') return value >= 0 ? value : undefined;
  return typeof value === 'string' ? parseQuantity(value) : undefined;
}

function containerPorts(containers: readonly unknown[] | undefined): number[] {
  const ports: number[] = [];
  for (const c of containers ?? []) {
    if (!isPlainObject(c) || !Array.isArray(c['ports'])) continue;
    for (const p of c['ports']) {
      if (isPlainObject(p) && typeof p['containerPort'] === 'number') ports.push(p['containerPort']);
    }
  }
  return ports;
}

/** `--log-level X`, `--log-level=X`, `-l X` or the course's one-token `"--log-level X"`. */
function withLogLevel(args: readonly string[], level: string): string[] {
  const out = [...args];
  for (let i = 0; i < out.length; i++) {
    const a = out[i]!;
    if ((a === '--log-level' || a === '-l') && i + 1 < out.length) {
      out[i + 1] = level;
      return out;
    }
    if (a.startsWith('--log-level=')) {
      out[i] = `--log-level=${level}`;
      return out;
    }
    if (a.startsWith('--log-level ')) {
      out[i] = `--log-level ${level}`;
      return out;
    }
  }
  return [...out, '--log-level', level];
}

/**
 * Replaces the proxy port in the command line, where the proxy reads it: a token that is the
 * port, or ends in `:<port>` or `=<port>`. Returns undefined when the command line does not
 * carry it (the port then comes from a configuration file the override cannot change).
 */
function withPortInCommandLine(tokens: readonly string[], from: number, to: number): string[] | undefined {
  const re = new RegExp(`(^|[:= ])${from}$`);
  let found = false;
  const out = tokens.map((t) => {
    if (!re.test(t)) return t;
    found = true;
    return t.replace(re, `$1${to}`);
  });
  return found ? out : undefined;
}

type Probe = NonNullable<V1Container['readinessProbe']>;

function withProbePort(probe: Probe | undefined, from: number, to: number): Probe | undefined {
  if (probe === undefined) return undefined;
  const copy = structuredClone(probe);
  if (copy.tcpSocket?.port === from) copy.tcpSocket.port = to;
  if (copy.httpGet?.port === from) copy.httpGet.port = to;
  if (copy.grpc?.port === from) copy.grpc.port = to;
  return copy;
}

/**
 * Reads the override annotations of a Pod and applies the valid ones to a copy of the template's
 * sidecar. `podContainers` are the Pod's own containers and init containers (for port clashes).
 */
export function applyOverrides(
  annotations: Record<string, unknown> | undefined,
  template: SidecarTemplate,
  podContainers: readonly unknown[],
): OverrideResult {
  const warnings: string[] = [];
  const applied: Record<string, string> = {};
  if (!hasOverrideAnnotations(annotations)) return { applied, warnings, template };
  const values = new Map<string, string>();
  for (const [key, value] of Object.entries(annotations!)) {
    if (!key.startsWith(OVERRIDE_PREFIX)) continue;
    if (!KNOWN.includes(key)) {
      warnings.push(
        `annotation ${key} ignored: not an override netmesh knows (allowed: ${KNOWN.map((k) => k.slice(OVERRIDE_PREFIX.length)).join(', ')})`,
      );
      continue;
    }
    if (typeof value !== 'string') {
      warnings.push(`annotation ${key} ignored: its value is not a string; the template's default is kept`);
      continue;
    }
    values.set(key, value);
  }
  const where = sidecarOf(template);
  if (where === undefined) {
    for (const [key, value] of values) {
      warnings.push(rejected(key, value, 'the template has no sidecar container to apply it to'));
    }
    return { applied, warnings, template };
  }
  const original = template[where.list][where.index]!;
  const sidecar: V1Container = structuredClone(original);
  const A = OVERRIDE_ANNOTATIONS;

  // Resources: each value must parse, and the request may not exceed the limit the Pod ends
  // up with (the apiserver would reject the Pod); otherwise the pair keeps the template's values.
  for (const resource of ['cpu', 'memory'] as const) {
    const requestKey = resource === 'cpu' ? A.cpuRequest : A.memoryRequest;
    const limitKey = resource === 'cpu' ? A.cpuLimit : A.memoryLimit;
    const wanted: { request?: string; limit?: string } = {};
    for (const [kind, key] of [
      ['request', requestKey],
      ['limit', limitKey],
    ] as const) {
      const value = values.get(key);
      if (value === undefined) continue;
      if (parseQuantity(value) === undefined) {
        warnings.push(rejected(key, value, 'not a Kubernetes quantity (e.g. 100m, 0.5, 1, 64Mi, 1Gi, 1e3)'));
        continue;
      }
      wanted[kind] = value;
    }
    if (wanted.request === undefined && wanted.limit === undefined) continue;
    const request = wanted.request ?? original.resources?.requests?.[resource];
    const limit = wanted.limit ?? original.resources?.limits?.[resource];
    const r = request === undefined ? undefined : quantityOf(request);
    const l = limit === undefined ? undefined : quantityOf(limit);
    if (r !== undefined && l !== undefined && r > l) {
      for (const [kind, key] of [
        ['request', requestKey],
        ['limit', limitKey],
      ] as const) {
        const value = wanted[kind];
        if (value === undefined) continue;
        warnings.push(
          rejected(
            key,
            value,
            `the ${resource} request ${String(request)} would exceed the limit ${String(limit)}`,
          ),
        );
      }
      continue;
    }
    sidecar.resources = structuredClone(sidecar.resources ?? {});
    if (wanted.request !== undefined) {
      sidecar.resources.requests = { ...sidecar.resources.requests, [resource]: wanted.request };
      applied[requestKey] = wanted.request;
    }
    if (wanted.limit !== undefined) {
      sidecar.resources.limits = { ...sidecar.resources.limits, [resource]: wanted.limit };
      applied[limitKey] = wanted.limit;
    }
  }

  const image = values.get(A.image);
  if (image !== undefined) {
    if (isImageReference(image)) {
      sidecar.image = image;
      applied[A.image] = image;
    } else {
      warnings.push(
        rejected(
          A.image,
          image,
          'not an image reference ([registry[:port]/]name[:tag][@sha256:digest], lowercase name)',
        ),
      );
    }
  }

  const level = values.get(A.logLevel);
  if (level !== undefined) {
    if (ENVOY_LOG_LEVELS.includes(level)) {
      sidecar.args = withLogLevel(sidecar.args ?? [], level);
      applied[A.logLevel] = level;
    } else {
      warnings.push(rejected(A.logLevel, level, `not an Envoy log level (${ENVOY_LOG_LEVELS.join(', ')})`));
    }
  }

  const portText = values.get(A.port);
  if (portText !== undefined) {
    const port = parsePort(portText);
    const declared = original.ports?.[0]?.containerPort;
    const appPorts = containerPorts(podContainers);
    const otherSidecarPorts = [...template.initContainers, ...template.containers]
      .filter((c) => c !== original)
      .flatMap((c) => containerPorts([c]));
    const commandLine =
      port === undefined || declared === undefined
        ? undefined
        : {
            command: sidecar.command ? withPortInCommandLine(sidecar.command, declared, port) : undefined,
            args: sidecar.args ? withPortInCommandLine(sidecar.args, declared, port) : undefined,
          };
    if (port === undefined) {
      warnings.push(rejected(A.port, portText, 'not a port number (1-65535)'));
    } else if (declared === undefined) {
      warnings.push(rejected(A.port, portText, `sidecar ${JSON.stringify(original.name)} declares no port`));
    } else if (appPorts.includes(port) || otherSidecarPorts.includes(port)) {
      warnings.push(rejected(A.port, portText, `port ${port} is already declared by a container of the pod`));
    } else if (commandLine?.command === undefined && commandLine?.args === undefined) {
      warnings.push(
        rejected(
          A.port,
          portText,
          `sidecar ${JSON.stringify(original.name)} does not take port ${declared} from its command line (its configuration file sets it)`,
        ),
      );
    } else {
      if (commandLine.command) sidecar.command = commandLine.command;
      if (commandLine.args) sidecar.args = commandLine.args;
      sidecar.ports = sidecar.ports!.map((p, i) => (i === 0 ? { ...p, containerPort: port } : p));
      for (const key of ['readinessProbe', 'livenessProbe', 'startupProbe'] as const) {
        const probe = withProbePort(sidecar[key], declared, port);
        if (probe) sidecar[key] = probe;
      }
      applied[A.port] = String(port);
    }
  }

  if (Object.keys(applied).length === 0) return { applied, warnings, template };
  const ordered: Record<string, string> = {};
  for (const key of KNOWN) if (applied[key] !== undefined) ordered[key] = applied[key];
  const list = template[where.list].map((c, i) => (i === where.index ? sidecar : c));
  return { applied: ordered, warnings, template: { ...template, [where.list]: list } };
}
