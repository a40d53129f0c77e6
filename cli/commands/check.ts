// `netmesh check`: is this installation working? Like `linkerd check` and `cmctl check api`:
// one line per check with ✔/✖ (‼ a warning, - skipped) and a hint, exit status 1 on any
// failure, -o json for scripts. Every verdict comes from the live cluster: the CRD served, the
// webhook configuration and the certificate its endpoint actually presents, the Service's ready
// endpoints, the template, the leader and its caches, RBAC, and Pods missing their sidecar.
import {
  AdmissionregistrationV1Api,
  ApiextensionsV1Api,
  AuthorizationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  DiscoveryV1Api,
  type V1MutatingWebhookConfiguration,
  type V1Pod,
  type V1ResourceAttributes,
  VersionApi,
} from '@kubernetes/client-node';
import { describeSource, type ResolvedKubeConfig } from '../../lib/kube.ts';
import { describeKubeError, hasStatus } from '../../lib/kube-errors.ts';
import { probeTls } from '../../lib/tls-probe.ts';
import { type CertSummary, describeCert, summarizeCert, verifyChain } from '../../lib/tls-verify.ts';
import { bundleCerts } from '../../webhook/certs.ts';
import {
  NAMESPACE_INJECTION_ENABLED,
  NAMESPACE_INJECTION_LABEL,
  SYSTEM_NAMESPACES,
  TEMPLATE_CONFIGMAP_KEY,
  TEMPLATE_CONFIGMAP_NAME,
} from '../../webhook/core/contract.ts';
import { isEmptyTemplate, parseTemplate } from '../../webhook/core/template.ts';
import {
  type CheckResult,
  type EndpointTarget,
  humanDuration,
  leaseVerdict,
  operatorReadiness,
  permissionText,
  podNamespaceVerdict,
  readyEndpoints,
  renderChecks,
  requiredPermissions,
  restartTarget,
  uninjectedPods,
} from '../check-core.ts';
import { connect } from '../cluster.ts';
import {
  durationFlag,
  type FlagSpec,
  intFlag,
  kubeFlags,
  namespaceFlag,
  netmeshNamespaceFlag,
  outputFlag,
  parseFlags,
} from '../flags.ts';
import { rawGet } from '../raw.ts';
import { excludedByName } from '../webhook-match.ts';
import { chartFullname } from './explain.ts';

export const SUMMARY = [
  'Check a netmesh installation on a live cluster, one line per check (✔ passed, ✖ failed, ‼ warning,',
  '- skipped) with a hint; exit status 1 when any check fails. Objects are named from the Helm release',
  '(--release; the chart names them <release>, or <release>-netmesh) in --netmesh-namespace.',
  '',
  'Checks: the apiserver; the permissions of whoever runs the check; the CRD networks.netmesh.io is',
  'established and served; the MutatingWebhookConfiguration exists with a caBundle; the webhook',
  'Service has ready endpoints and the certificate each presents verifies against that caBundle (a URL',
  'clientConfig is probed at the URL); the certificates are not about to expire; the sidecar template',
  'parses; the operator Lease has a live holder and its /readyz says its caches are synced (through the',
  "apiserver's pod proxy, or --leader-health-url for a leader outside the cluster); the ServiceAccount",
  'has the RBAC netmesh needs (SubjectAccessReview); no namespace labelled netmesh.io/injection=enabled',
  'holds Pods without the sidecar (with -n, only that namespace is looked at).',
].join('\n');

export const flags = {
  ...kubeFlags,
  ...netmeshNamespaceFlag,
  namespace: {
    type: 'string',
    short: 'n',
    description:
      'look for Pods without the sidecar in this namespace only (default: every namespace labelled for injection)',
  },
  release: {
    type: 'string',
    description: 'Helm release name (objects are <release>, or <release>-netmesh)',
    env: 'NETMESH_RELEASE',
    default: 'netmesh',
  },
  'webhook-config-name': {
    type: 'string',
    description: 'MutatingWebhookConfiguration (default: from --release)',
  },
  'lease-name': { type: 'string', description: 'leader-election Lease (default: <fullname>-operator)' },
  'service-account': { type: 'string', description: "netmesh's ServiceAccount (default: <fullname>)" },
  'template-configmap': {
    type: 'string',
    description: 'ConfigMap holding the sidecar template',
    default: TEMPLATE_CONFIGMAP_NAME,
  },
  'tls-secret': {
    type: 'string',
    description: 'Secret of the self-managed certificates',
    default: 'netmesh-webhook-tls',
  },
  'health-port': { type: 'string', description: "the leader Pod's health port (/readyz)", default: '8081' },
  'leader-health-url': {
    type: 'string',
    description: "http://host:port of the leader's health listener, when it runs outside the cluster",
  },
  'min-cert-validity': {
    type: 'string',
    description: 'fail when a webhook certificate expires sooner than this',
    default: '168h',
  },
  timeout: { type: 'string', description: 'timeout of each network probe', default: '5s' },
  ...outputFlag,
} satisfies Record<string, FlagSpec>;

interface Names {
  /** Where netmesh is installed (--netmesh-namespace). */
  namespace: string;
  /** -n: the one namespace whose Pods are checked for the sidecar; undefined: every labelled one. */
  podNamespace?: string | undefined;
  fullname: string;
  webhookConfig: string;
  lease: string;
  serviceAccount: string;
  templateConfigMap: string;
  tlsSecret: string;
}

/** What later checks need from earlier ones. */
interface Found {
  config?: V1MutatingWebhookConfiguration | undefined;
  caBundlePem?: string;
  presented?: { leaf: CertSummary; signedBy?: CertSummary | undefined };
}

const errText = (err: unknown, server?: string): string =>
  describeKubeError(err, server ? { server } : {}).message;

export async function run(argv: string[]): Promise<number> {
  const { values, help } = parseFlags('check', SUMMARY, argv, flags);
  if (help) return 0;
  const minValidityMs = durationFlag('min-cert-validity', values['min-cert-validity'], 7 * 86_400_000);
  const timeoutMs = durationFlag('timeout', values.timeout, 5_000);
  const healthPort = intFlag('health-port', values['health-port'], 8081);
  const netmeshNamespace = namespaceFlag('netmesh-namespace', values['netmesh-namespace']);
  const podNamespace =
    values.namespace !== undefined ? namespaceFlag('namespace', values.namespace) : undefined;
  const cluster = connect(values);
  const release = values.release ?? 'netmesh';
  const fullname = chartFullname(release);
  const names: Names = {
    namespace: netmeshNamespace,
    podNamespace,
    fullname,
    webhookConfig: values['webhook-config-name'] ?? fullname,
    lease: values['lease-name'] ?? `${fullname}-operator`,
    serviceAccount: values['service-account'] ?? fullname,
    templateConfigMap: values['template-configmap'] ?? TEMPLATE_CONFIGMAP_NAME,
    tlsSecret: values['tls-secret'] ?? 'netmesh-webhook-tls',
  };
  const results = await runChecks(cluster, names, {
    minValidityMs,
    timeoutMs,
    healthPort,
    leaderHealthUrl: values['leader-health-url'],
  });
  const failed = results.some((r) => r.status === 'fail');
  if (values.output === 'json') {
    console.log(
      JSON.stringify(
        {
          ok: !failed,
          cluster: { server: cluster.server, ...(cluster.context ? { context: cluster.context } : {}) },
          release,
          netmeshNamespace: names.namespace,
          ...(podNamespace ? { namespace: podNamespace } : {}),
          checks: results,
        },
        null,
        2,
      ),
    );
  } else {
    const header = `netmesh check: release ${release} in namespace ${names.namespace}${podNamespace ? `, Pods of namespace ${podNamespace}` : ''}, ${cluster.server} (${describeSource(cluster.source)}${cluster.context ? `, context ${cluster.context}` : ''})`;
    console.log(renderChecks(results, header));
  }
  return failed ? 1 : 0;
}

export async function runChecks(
  cluster: ResolvedKubeConfig,
  names: Names,
  opts: {
    minValidityMs: number;
    timeoutMs: number;
    healthPort: number;
    leaderHealthUrl?: string | undefined;
  },
): Promise<CheckResult[]> {
  const { kc, server } = cluster;
  const results: CheckResult[] = [];
  const add = (r: CheckResult): void => {
    results.push(r);
  };
  const found: Found = {};
  const ns = names.namespace;

  // The apiserver first: if it cannot be reached, nothing else can be checked.
  try {
    const v = await kc.makeApiClient(VersionApi).getCode();
    const minor = Number.parseInt(v.minor, 10);
    add(
      Number(v.major) === 1 && minor < 31
        ? {
            name: 'cluster',
            status: 'fail',
            message: `Kubernetes ${v.gitVersion} at ${server}: netmesh needs 1.31 or newer`,
            hint: 'the CRD validation rules and the webhook matchConditions need Kubernetes 1.31',
          }
        : { name: 'cluster', status: 'ok', message: `Kubernetes ${v.gitVersion} at ${server}` },
    );
  } catch (err) {
    const info = describeKubeError(err, { server });
    add({
      name: 'cluster',
      status: 'fail',
      message: info.message,
      ...(info.hint ? { hint: info.hint } : {}),
    });
    add({ name: 'remaining checks', status: 'skip', message: 'the apiserver cannot be reached' });
    return results;
  }

  add(await checkOwnPermissions(kc, ns, names.podNamespace));
  add(await checkCrd(kc));
  add(await checkWebhookConfiguration(kc, names, found));
  add(await checkWebhookEndpoint(kc, found, opts.timeoutMs));
  add(checkCertificateExpiry(found, opts.minValidityMs));
  add(await checkTemplate(kc, names));
  const leader = await checkLeader(kc, names);
  add(leader.result);
  add(await checkLeaderReady(kc, names, leader.holder, opts));
  add(await checkServiceAccountRbac(kc, names, found));
  add(await checkUninjectedPods(kc, names, found));
  return results;
}

/** What `netmesh check` itself reads; a missing permission turns the check that needs it into a warning. */
async function checkOwnPermissions(
  kc: ResolvedKubeConfig['kc'],
  ns: string,
  podNs: string | undefined,
): Promise<CheckResult> {
  const needs: V1ResourceAttributes[] = [
    { verb: 'get', group: 'apiextensions.k8s.io', resource: 'customresourcedefinitions' },
    { verb: 'get', group: 'admissionregistration.k8s.io', resource: 'mutatingwebhookconfigurations' },
    { verb: 'get', resource: 'services', namespace: ns },
    { verb: 'list', group: 'discovery.k8s.io', resource: 'endpointslices', namespace: ns },
    { verb: 'get', resource: 'configmaps', namespace: ns },
    { verb: 'get', group: 'coordination.k8s.io', resource: 'leases', namespace: ns },
    { verb: 'get', resource: 'pods', subresource: 'proxy', namespace: ns },
    // With -n only that namespace and its Pods are read: a namespace-scoped identity can check it.
    ...(podNs
      ? [
          { verb: 'get', resource: 'namespaces', name: podNs },
          { verb: 'list', resource: 'pods', namespace: podNs },
        ]
      : [
          { verb: 'list', resource: 'namespaces' },
          { verb: 'list', resource: 'pods' },
        ]),
    { verb: 'create', group: 'authorization.k8s.io', resource: 'subjectaccessreviews' },
  ];
  const auth = kc.makeApiClient(AuthorizationV1Api);
  try {
    const denied: string[] = [];
    for (const attributes of needs) {
      const r = await auth.createSelfSubjectAccessReview({
        body: { spec: { resourceAttributes: attributes } },
      });
      if (!r.status?.allowed) denied.push(permissionText(attributes));
    }
    if (denied.length === 0) {
      return {
        name: 'permissions',
        status: 'ok',
        message: 'this identity may read everything netmesh check looks at',
      };
    }
    return {
      name: 'permissions',
      status: 'warn',
      message: `this identity may not ${denied.join(', ')}: the checks that need it cannot pass`,
      hint: 'run netmesh check as a cluster administrator, or grant these read permissions',
    };
  } catch (err) {
    return {
      name: 'permissions',
      status: 'warn',
      message: `cannot ask the apiserver (SelfSubjectAccessReview): ${errText(err)}`,
    };
  }
}

async function checkCrd(kc: ResolvedKubeConfig['kc']): Promise<CheckResult> {
  const name = 'networks.netmesh.io';
  try {
    const crd = await kc.makeApiClient(ApiextensionsV1Api).readCustomResourceDefinition({ name });
    const cond = (t: string) => crd.status?.conditions?.find((c) => c.type === t);
    const established = cond('Established');
    if (established?.status !== 'True') {
      return {
        name: `CRD ${name}`,
        status: 'fail',
        message: `not established (${established?.reason ?? 'no condition'}: ${established?.message ?? 'the apiserver has not accepted it yet'})`,
        hint: `kubectl describe crd ${name}`,
      };
    }
    const v1 = crd.spec.versions.find((v) => v.name === 'v1');
    if (!v1?.served) {
      return {
        name: `CRD ${name}`,
        status: 'fail',
        message: 'version v1 is not served',
        hint: 'reinstall the CRD from crds/',
      };
    }
    return {
      name: `CRD ${name}`,
      status: 'ok',
      message: `established, v1 served${v1.storage ? ' and stored' : ''}`,
    };
  } catch (err) {
    if (hasStatus(err, 404)) {
      return {
        name: `CRD ${name}`,
        status: 'fail',
        message: 'not installed',
        hint: 'kubectl apply -f crds/ (Helm installs it with the chart, but never reinstalls a deleted CRD)',
      };
    }
    return { name: `CRD ${name}`, status: hasStatus(err, 403) ? 'warn' : 'fail', message: errText(err) };
  }
}

async function checkWebhookConfiguration(
  kc: ResolvedKubeConfig['kc'],
  names: Names,
  found: Found,
): Promise<CheckResult> {
  const name = `webhook configuration ${names.webhookConfig}`;
  let config: V1MutatingWebhookConfiguration;
  try {
    config = await kc
      .makeApiClient(AdmissionregistrationV1Api)
      .readMutatingWebhookConfiguration({ name: names.webhookConfig });
  } catch (err) {
    if (hasStatus(err, 404)) {
      return {
        name,
        status: 'fail',
        message: 'MutatingWebhookConfiguration not found: no Pod is injected',
        hint: 'is the release name right (--release)? `helm upgrade` recreates it',
      };
    }
    return { name, status: hasStatus(err, 403) ? 'warn' : 'fail', message: errText(err) };
  }
  found.config = config;
  const webhooks = config.webhooks ?? [];
  if (webhooks.length === 0) return { name, status: 'fail', message: 'it has no webhooks' };
  const bundles = new Set(webhooks.map((w) => w.clientConfig.caBundle ?? ''));
  if (bundles.has('')) {
    const certManager = config.metadata?.annotations?.['cert-manager.io/inject-ca-from'];
    return {
      name,
      status: 'fail',
      message: `${webhooks
        .filter((w) => !w.clientConfig.caBundle)
        .map((w) => w.name)
        .join(
          ', ',
        )} ha${webhooks.length > 1 ? 've' : 's'} no caBundle: the apiserver cannot call the webhook`,
      hint: certManager
        ? `cert-manager's cainjector fills it from ${certManager}: is cert-manager running and the Certificate Ready?`
        : 'netmesh patches it in at start: is netmesh running? its logs say why a patch failed',
    };
  }
  if (bundles.size > 1) {
    return {
      name,
      status: 'warn',
      message: 'its webhooks carry different caBundles',
      hint: 'restart netmesh to re-patch them',
    };
  }
  const pem = Buffer.from([...bundles][0]!, 'base64').toString('utf8');
  if (bundleCerts(pem).length === 0) {
    return { name, status: 'fail', message: 'the caBundle holds no PEM certificate' };
  }
  found.caBundlePem = pem;
  const cc = webhooks[0]!.clientConfig;
  const target =
    cc.url ??
    `service ${cc.service?.namespace}/${cc.service?.name}:${cc.service?.port ?? 443}${cc.service?.path ?? ''}`;
  return {
    name,
    status: 'ok',
    message: `${webhooks.length} webhooks calling ${target}, failurePolicy ${webhooks[0]!.failurePolicy ?? 'Fail'}, caBundle with ${bundleCerts(pem).length} CA(s)`,
  };
}

async function checkWebhookEndpoint(
  kc: ResolvedKubeConfig['kc'],
  found: Found,
  timeoutMs: number,
): Promise<CheckResult> {
  const name = 'webhook endpoint';
  const cc = found.config?.webhooks?.[0]?.clientConfig;
  if (!cc || !found.caBundlePem) return { name, status: 'skip', message: 'no usable webhook configuration' };
  let targets: EndpointTarget[];
  let serverName: string;
  let where: string;
  if (cc.url) {
    const u = new URL(cc.url);
    serverName = u.hostname.replace(/^\[|\]$/g, '');
    targets = [{ host: serverName, port: u.port ? Number(u.port) : 443 }];
    where = cc.url;
  } else if (cc.service) {
    const svcNs = cc.service.namespace;
    const svcName = cc.service.name;
    serverName = `${svcName}.${svcNs}.svc`;
    where = `Service ${svcNs}/${svcName}`;
    try {
      const svc = await kc
        .makeApiClient(CoreV1Api)
        .readNamespacedService({ namespace: svcNs, name: svcName });
      const port = (svc.spec?.ports ?? []).find((p) => p.port === (cc.service?.port ?? 443));
      if (!port) {
        return {
          name,
          status: 'fail',
          message: `${where} has no port ${cc.service.port ?? 443}, which the webhook configuration calls`,
        };
      }
      const slices = await kc.makeApiClient(DiscoveryV1Api).listNamespacedEndpointSlice({
        namespace: svcNs,
        labelSelector: `kubernetes.io/service-name=${svcName}`,
      });
      targets = readyEndpoints({ name: port.name, port: port.port }, slices.items);
    } catch (err) {
      if (hasStatus(err, 404)) {
        return { name, status: 'fail', message: `${where} not found`, hint: '`helm upgrade` recreates it' };
      }
      return { name, status: hasStatus(err, 403) ? 'warn' : 'fail', message: errText(err) };
    }
    if (targets.length === 0) {
      return {
        name,
        status: 'fail',
        message: `${where} has no ready endpoints: the apiserver cannot reach the webhook`,
        hint: `kubectl -n ${svcNs} get pods,endpointslices -l app.kubernetes.io/name=netmesh: are netmesh's Pods Running and Ready?`,
      };
    }
  } else {
    return { name, status: 'fail', message: 'the webhook clientConfig has neither url nor service' };
  }

  const now = new Date();
  const problems: string[] = [];
  const unreachable: string[] = [];
  const good: string[] = [];
  for (const t of targets.slice(0, 3)) {
    const at = `${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`;
    try {
      const probe = await probeTls({ host: t.host, port: t.port, servername: serverName, timeoutMs });
      const v = verifyChain({ chain: probe.chain, caBundlePem: found.caBundlePem, serverName, now });
      found.presented ??= { leaf: v.leaf, signedBy: v.signedBy };
      if (v.trusted) good.push(at);
      else problems.push(`${at} presents ${describeCert(v.leaf)}: ${v.problems.join('; ')}`);
    } catch (err) {
      unreachable.push(`${at} (${errText(err)})`);
    }
  }
  if (problems.length > 0) {
    return {
      name,
      status: 'fail',
      message: `the caBundle does not verify the certificate presented: ${problems.join(' | ')}`,
      hint: found.config?.metadata?.annotations?.['cert-manager.io/inject-ca-from']
        ? 'cert-manager: check that the Certificates are Ready and cainjector runs'
        : 'restart netmesh so it re-patches the caBundle from its Secret, or empty the Secret to start over (README, Troubleshooting)',
    };
  }
  if (good.length === 0) {
    return {
      name,
      status: cc.url ? 'fail' : 'warn',
      message: `cannot reach ${unreachable.join(', ')} from this machine`,
      hint: cc.url
        ? 'nothing answers at the URL the apiserver calls: is netmesh running there?'
        : 'Pod IPs are often not routable from outside the cluster: run netmesh check from inside it to probe the endpoints',
    };
  }
  return {
    name,
    status: 'ok',
    message: `${where}: ${good.join(', ')} present${good.length === 1 ? 's' : ''} ${found.presented?.leaf.subject}, verified by the caBundle for ${serverName}${unreachable.length ? ` (unreachable: ${unreachable.join(', ')})` : ''}`,
  };
}

function checkCertificateExpiry(found: Found, minValidityMs: number): CheckResult {
  const name = 'certificate expiry';
  if (!found.caBundlePem) return { name, status: 'skip', message: 'no caBundle' };
  const now = Date.now();
  const certs: { what: string; cert: CertSummary }[] = [];
  if (found.presented) {
    certs.push({ what: 'serving certificate', cert: found.presented.leaf });
    if (found.presented.signedBy) certs.push({ what: 'CA', cert: found.presented.signedBy });
  } else {
    // Without the presented certificate, the CA that lasts longest is the one that matters.
    const cas = bundleCerts(found.caBundlePem).map((p) => summarizeCert(p));
    const ca = cas.sort((a, b) => b.notAfter.getTime() - a.notAfter.getTime())[0];
    if (ca) certs.push({ what: 'CA', cert: ca });
  }
  const soonest = certs.sort((a, b) => a.cert.notAfter.getTime() - b.cert.notAfter.getTime())[0];
  if (!soonest) return { name, status: 'skip', message: 'no certificate to look at' };
  const left = soonest.cert.notAfter.getTime() - now;
  const text = `${soonest.what} ${soonest.cert.subject} expires ${soonest.cert.notAfter.toISOString()}`;
  if (left <= 0)
    return {
      name,
      status: 'fail',
      message: `${soonest.what} ${soonest.cert.subject} expired at ${soonest.cert.notAfter.toISOString()}`,
    };
  if (left < minValidityMs) {
    return {
      name,
      status: 'fail',
      message: `${text}, in ${humanDuration(left)} (less than --min-cert-validity ${humanDuration(minValidityMs)})`,
      hint: 'self-managed certificates rotate with a third of their validity left: is netmesh running? with cert-manager, check the Certificate renewal',
    };
  }
  return {
    name,
    status: 'ok',
    message: `${text} (in ${humanDuration(left)})${found.presented ? '' : '; serving certificate not seen'}`,
  };
}

async function checkTemplate(kc: ResolvedKubeConfig['kc'], names: Names): Promise<CheckResult> {
  const name = 'sidecar template';
  const where = `ConfigMap ${names.namespace}/${names.templateConfigMap}`;
  try {
    const cm = await kc
      .makeApiClient(CoreV1Api)
      .readNamespacedConfigMap({ namespace: names.namespace, name: names.templateConfigMap });
    const text = cm.data?.[TEMPLATE_CONFIGMAP_KEY];
    if (text === undefined) {
      return {
        name,
        status: 'fail',
        message: `${where} has no key ${TEMPLATE_CONFIGMAP_KEY}: Pods are admitted without a sidecar (NoTemplate)`,
      };
    }
    const parsed = parseTemplate(text);
    if (!parsed.ok) {
      return {
        name,
        status: 'fail',
        message: `${where} does not parse: ${parsed.error}`,
        hint: 'the webhook keeps the last good template while it runs, but a restart finds none: fix the ConfigMap',
      };
    }
    if (isEmptyTemplate(parsed.template)) {
      return { name, status: 'warn', message: `${where} is valid but adds nothing` };
    }
    const t = parsed.template;
    const parts = [
      t.initContainers.length ? `initContainers ${t.initContainers.map((c) => c.name).join(', ')}` : '',
      t.containers.length ? `containers ${t.containers.map((c) => c.name).join(', ')}` : '',
      t.volumes.length ? `volumes ${t.volumes.map((v) => v.name).join(', ')}` : '',
    ].filter(Boolean);
    return { name, status: 'ok', message: `${where} parses: ${parts.join('; ')} (hash ${parsed.hash})` };
  } catch (err) {
    if (hasStatus(err, 404)) {
      return {
        name,
        status: 'fail',
        message: `${where} not found: Pods are admitted without a sidecar (NoTemplate)`,
        hint: '`helm upgrade` recreates it (template.create)',
      };
    }
    return { name, status: hasStatus(err, 403) ? 'warn' : 'fail', message: errText(err) };
  }
}

async function checkLeader(
  kc: ResolvedKubeConfig['kc'],
  names: Names,
): Promise<{ result: CheckResult; holder?: string | undefined }> {
  const name = 'operator leader';
  try {
    const lease = await kc
      .makeApiClient(CoordinationV1Api)
      .readNamespacedLease({ namespace: names.namespace, name: names.lease });
    const v = leaseVerdict(lease, Date.now());
    if (!v.ok) {
      return {
        result: {
          name,
          status: 'fail',
          message: `Lease ${names.namespace}/${names.lease}: ${v.message}`,
          hint: `is netmesh running? kubectl -n ${names.namespace} get pods; kubectl -n ${names.namespace} logs deploy/${names.fullname}`,
        },
      };
    }
    return {
      result: { name, status: 'ok', message: `Lease ${names.namespace}/${names.lease} ${v.message}` },
      holder: v.holder,
    };
  } catch (err) {
    if (hasStatus(err, 404)) {
      return {
        result: {
          name,
          status: 'fail',
          message: `Lease ${names.namespace}/${names.lease} not found`,
          hint: 'the chart creates it: is --release right? `helm upgrade` recreates it',
        },
      };
    }
    return { result: { name, status: hasStatus(err, 403) ? 'warn' : 'fail', message: errText(err) } };
  }
}

async function checkLeaderReady(
  kc: ResolvedKubeConfig['kc'],
  names: Names,
  holder: string | undefined,
  opts: { timeoutMs: number; healthPort: number; leaderHealthUrl?: string | undefined },
): Promise<CheckResult> {
  const name = 'operator caches';
  if (!holder) return { name, status: 'skip', message: 'no live leader' };
  let status: number;
  let body: string;
  let via: string;
  try {
    if (opts.leaderHealthUrl) {
      via = opts.leaderHealthUrl;
      const res = await fetch(`${opts.leaderHealthUrl.replace(/\/+$/, '')}/readyz?verbose`, {
        signal: AbortSignal.timeout(opts.timeoutMs),
      });
      status = res.status;
      body = await res.text();
    } else {
      const pod = await kc
        .makeApiClient(CoreV1Api)
        .readNamespacedPod({ namespace: names.namespace, name: holder })
        .catch((err: unknown) => {
          if (hasStatus(err, 404)) return undefined;
          throw err;
        });
      if (!pod) {
        return {
          name,
          status: 'skip',
          message: `the leader ${holder} is not a Pod in ${names.namespace} (netmesh running outside the cluster?)`,
          hint: 'pass --leader-health-url http://<host>:<port> of its health listener to check it',
        };
      }
      via = `pod ${holder} port ${opts.healthPort} (apiserver proxy)`;
      const path = `/api/v1/namespaces/${encodeURIComponent(names.namespace)}/pods/${encodeURIComponent(holder)}:${opts.healthPort}/proxy/readyz?verbose`;
      ({ status, body } = await rawGet(kc, path, opts.timeoutMs));
      if (status === 403 || status === 401) {
        return {
          name,
          status: 'warn',
          message: `cannot read the leader's /readyz through the apiserver (HTTP ${status})`,
          hint: 'needs get pods/proxy in the namespace',
        };
      }
    }
  } catch (err) {
    return { name, status: 'fail', message: `cannot read the leader's /readyz: ${errText(err)}` };
  }
  const r = operatorReadiness(body);
  if (!r.ok) {
    return {
      name,
      status: 'fail',
      message: `${r.message} (HTTP ${status} from ${via})`,
      hint: `the leader's logs say why: kubectl -n ${names.namespace} logs ${holder}`,
    };
  }
  return { name, status: 'ok', message: `leader ${holder}: ${r.message}` };
}

async function checkServiceAccountRbac(
  kc: ResolvedKubeConfig['kc'],
  names: Names,
  found: Found,
): Promise<CheckResult> {
  const name = 'RBAC';
  const sa = names.serviceAccount;
  const user = `system:serviceaccount:${names.namespace}:${sa}`;
  try {
    await kc.makeApiClient(CoreV1Api).readNamespacedServiceAccount({ namespace: names.namespace, name: sa });
  } catch (err) {
    if (hasStatus(err, 404)) {
      return {
        name,
        status: 'fail',
        message: `ServiceAccount ${names.namespace}/${sa} not found`,
        hint: 'pass --service-account if the chart was installed with serviceAccount.name',
      };
    }
    if (!hasStatus(err, 403)) return { name, status: 'fail', message: errText(err) };
  }
  const selfManaged = !found.config?.metadata?.annotations?.['cert-manager.io/inject-ca-from'];
  const perms = requiredPermissions({
    namespace: names.namespace,
    fullname: names.fullname,
    tlsSecret: names.tlsSecret,
    selfManagedCerts: selfManaged,
  });
  const auth = kc.makeApiClient(AuthorizationV1Api);
  const denied: string[] = [];
  try {
    for (const p of perms) {
      const r = await auth.createSubjectAccessReview({
        body: {
          spec: {
            user,
            groups: [
              'system:serviceaccounts',
              `system:serviceaccounts:${names.namespace}`,
              'system:authenticated',
            ],
            resourceAttributes: p.attributes,
          },
        },
      });
      if (!r.status?.allowed) denied.push(`${permissionText(p.attributes)} (${p.why})`);
    }
  } catch (err) {
    if (hasStatus(err, 403)) {
      return {
        name,
        status: 'skip',
        message: `cannot review the permissions of ${user}: this identity may not create SubjectAccessReviews`,
        hint: 'run netmesh check as a cluster administrator to check them',
      };
    }
    return { name, status: 'fail', message: errText(err) };
  }
  if (denied.length > 0) {
    return {
      name,
      status: 'fail',
      message: `${user} may not ${denied.join(', ')}`,
      hint: 'the chart grants these (templates/rbac.yaml): reinstall it, or check --release and --service-account',
    };
  }
  return { name, status: 'ok', message: `${user} has the ${perms.length} permissions netmesh needs` };
}

async function checkUninjectedPods(
  kc: ResolvedKubeConfig['kc'],
  names: Names,
  found: Found,
): Promise<CheckResult> {
  const name = 'injected namespaces';
  const core = kc.makeApiClient(CoreV1Api);
  const excluded = new Set([
    ...SYSTEM_NAMESPACES,
    names.namespace,
    ...(found.config ? excludedByName(found.config) : []),
  ]);
  try {
    let namespaces: string[];
    if (names.podNamespace !== undefined) {
      const ns = names.podNamespace;
      const labels = await core.readNamespace({ name: ns }).then(
        (n) => n.metadata?.labels ?? {},
        (err: unknown) => {
          if (hasStatus(err, 404)) return undefined;
          throw err;
        },
      );
      const verdict = podNamespaceVerdict(ns, labels, {
        netmeshNamespace: names.namespace,
        excludedByConfig: found.config ? excludedByName(found.config) : [],
      });
      if (verdict) return { name, ...verdict };
      namespaces = [ns];
    } else {
      namespaces = (
        await core.listNamespace({
          labelSelector: `${NAMESPACE_INJECTION_LABEL}=${NAMESPACE_INJECTION_ENABLED}`,
        })
      ).items
        .map((n) => n.metadata?.name ?? '')
        .filter((n) => n && !excluded.has(n));
    }
    if (namespaces.length === 0) {
      return {
        name,
        status: 'ok',
        message: `no namespace is labelled ${NAMESPACE_INJECTION_LABEL}=${NAMESPACE_INJECTION_ENABLED}`,
      };
    }
    const missing: { ns: string; pod: V1Pod }[] = [];
    let total = 0;
    for (const ns of namespaces) {
      const pods = (await core.listNamespacedPod({ namespace: ns })).items;
      total += pods.length;
      for (const pod of uninjectedPods(pods)) missing.push({ ns, pod });
    }
    if (missing.length === 0) {
      return {
        name,
        status: 'ok',
        message: names.podNamespace
          ? `namespace ${names.podNamespace}: ${total} Pod(s), all with the sidecar (or opted out)`
          : `${namespaces.length} labelled namespace(s), ${total} Pod(s), all with the sidecar (or opted out)`,
      };
    }
    const shown = missing
      .slice(0, 5)
      .map(({ ns, pod }) => `${ns}/${pod.metadata?.name}`)
      .join(', ');
    const first = missing.find((m) => restartTarget(m.pod));
    return {
      name,
      status: 'fail',
      message: `${missing.length} Pod(s) without the sidecar in ${names.podNamespace ? `namespace ${names.podNamespace}` : 'labelled namespaces'}: ${shown}${missing.length > 5 ? ', ...' : ''}`,
      hint: first
        ? `they were created before injection applied (or while the webhook was down): re-create them, e.g. kubectl -n ${first.ns} rollout restart ${restartTarget(first.pod)}`
        : 're-create them (kubectl delete pod; their controller recreates them injected)',
    };
  } catch (err) {
    return { name, status: hasStatus(err, 403) ? 'warn' : 'fail', message: errText(err) };
  }
}
