/**
 * Where the serving certificate comes from, and how it changes without a restart.
 *
 * - SecretCertSource (default, self-managed): the certificates live in one Secret shared by
 *   all replicas (certs.ts has the layout and the rotation plan). Each replica re-reads it every
 *   resyncMs, takes one planned step at a time with a compare-and-swap on the Secret, keeps the
 *   caBundle of every webhook in its MutatingWebhookConfiguration equal to what the Secret says
 *   (get + JSON patch on that one name: least privilege), and serves the current certificate.
 * - DirCertSource (--cert-dir): tls.crt/tls.key mounted by cert-manager, polled for changes;
 *   cert-manager's CA injector owns the caBundle, so nothing is patched.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import type {
  AdmissionregistrationV1Api,
  CoreV1Api,
  V1MutatingWebhookConfiguration,
  V1Secret,
} from '@kubernetes/client-node';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { inspectCertificate } from '../lib/pki.ts';
import {
  applyCertAction,
  bundleContains,
  type CertAction,
  type CertState,
  caBundleFor,
  parseSecretContent,
  planCertificates,
  type RotationTimings,
  type ServingNames,
  sameBundle,
  secretContent,
} from './certs.ts';
import type { TlsMaterial } from './server.ts';

export interface ServingCertificate extends TlsMaterial {
  notAfter: Date;
}

export interface CertSource {
  /** Loads (or creates) the certificate; resolves once there is one to serve. */
  start(): Promise<ServingCertificate>;
  current(): ServingCertificate;
  /** PEM bundle the apiserver must trust (self-managed mode only). */
  caBundle(): string | undefined;
  onChange(listener: (cert: ServingCertificate) => void): void;
  /** Runs one reconcile pass now (e.g. right after registering the webhook configuration). */
  sync(): Promise<void>;
  /** Starts a rotation and resolves once the new certificate is served (self-managed mode). */
  rotateNow(): Promise<void>;
  stop(): Promise<void>;
}

const statusOf = (err: unknown): number | undefined => (err as { code?: number })?.code;

/**
 * A 403 on the TLS Secret, said as the permission that is missing. The chart creates the Secret
 * empty with the release and grants only get and patch on it by name (no create), so a deleted
 * Secret is brought back by the chart, not by netmesh.
 */
export class SecretForbiddenError extends Error {
  readonly code = 403;
  readonly verb: 'get' | 'patch' | 'create';
  /** The message in two parts: what is missing, and the fix. */
  readonly problem: string;
  readonly hint: string;
  constructor(verb: 'get' | 'patch' | 'create', namespace: string, name: string, cause: unknown) {
    const what =
      verb === 'create'
        ? `forbidden to create Secret ${namespace}/${name}: it does not exist and the webhook's identity lacks permission "create" on secrets in namespace ${namespace}`
        : `forbidden to ${verb} Secret ${namespace}/${name}: the webhook's identity lacks permission "${verb}" on secrets (resourceNames [${name}]) in namespace ${namespace}`;
    const hint =
      verb === 'create'
        ? 'the Helm chart creates this Secret (empty, type Opaque) and grants only get/patch on it; if it was deleted, run `helm upgrade` to recreate it'
        : "the Helm chart creates this Secret and grants get/patch on it by name: check that --tls-secret matches the chart's webhook.certificates.secretName, and run `helm upgrade` to recreate the Secret if it was deleted";
    super(`${what}; ${hint}`, { cause });
    this.name = 'SecretForbiddenError';
    this.verb = verb;
    this.problem = what;
    this.hint = hint;
  }
}

function toServing(certPem: string, keyPem: string): ServingCertificate {
  return { certPem, keyPem, notAfter: inspectCertificate(certPem).notAfter };
}

export interface SecretCertSourceOptions {
  core: CoreV1Api;
  admission: AdmissionregistrationV1Api;
  namespace: string;
  secretName: string;
  /** The MutatingWebhookConfiguration whose caBundle this source keeps; undefined: do not patch. */
  webhookConfigName: string | undefined;
  names: ServingNames;
  timings: RotationTimings;
  logger: Logger;
  now?: () => Date;
}

interface ReadSecret {
  state: CertState | undefined;
  resourceVersion: string | undefined;
  exists: boolean;
}

export class SecretCertSource implements CertSource {
  readonly #opts: SecretCertSourceOptions;
  readonly #log: Logger;
  readonly #listeners: ((cert: ServingCertificate) => void)[] = [];
  #serving: ServingCertificate | undefined;
  #bundle: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #forceRotate = false;
  #running: Promise<void> | undefined;
  #rotationWaiters: { fromCa: string; resolve: () => void; reject: (e: Error) => void }[] = [];
  #currentCa: string | undefined;
  #nextDelayMs: number | undefined;

  constructor(opts: SecretCertSourceOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ component: 'certs', secret: `${opts.namespace}/${opts.secretName}` });
  }

  #now(): Date {
    return this.#opts.now?.() ?? new Date();
  }

  async start(): Promise<ServingCertificate> {
    await this.sync();
    this.#schedule();
    return this.current();
  }

  current(): ServingCertificate {
    if (!this.#serving) throw new Error('certificate source not started');
    return this.#serving;
  }

  caBundle(): string | undefined {
    return this.#bundle;
  }

  onChange(listener: (cert: ServingCertificate) => void): void {
    this.#listeners.push(listener);
  }

  rotateNow(): Promise<void> {
    const fromCa = this.#currentCa;
    if (fromCa === undefined) return Promise.reject(new Error('certificate source not started'));
    this.#forceRotate = true;
    const done = new Promise<void>((resolve, reject) =>
      this.#rotationWaiters.push({ fromCa, resolve, reject }),
    );
    void this.sync()
      .catch((err: Error) => this.#log.warn({ err: err.message }, 'certificate reconcile failed; retrying'))
      .finally(() => this.#schedule());
    return done;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running?.catch(() => {});
    for (const w of this.#rotationWaiters.splice(0)) w.reject(new Error('certificate source stopped'));
  }

  #schedule(): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(
      () => {
        void this.sync()
          .catch((err: Error) =>
            this.#log.warn({ err: err.message }, 'certificate reconcile failed; retrying'),
          )
          .finally(() => this.#schedule());
      },
      Math.min(this.#nextDelayMs ?? Number.POSITIVE_INFINITY, this.#opts.timings.resyncMs),
    );
    this.#timer.unref();
  }

  /** One reconcile pass; concurrent callers share the pass in flight, then run another. */
  sync(): Promise<void> {
    const run = async (): Promise<void> => {
      await this.#running?.catch(() => {});
      await this.#reconcile();
    };
    const p = run();
    this.#running = p;
    return p;
  }

  async #readSecret(): Promise<ReadSecret> {
    try {
      const secret = await this.#opts.core.readNamespacedSecret({
        name: this.#opts.secretName,
        namespace: this.#opts.namespace,
      });
      return {
        state: parseSecretContent(secret.data, secret.metadata?.annotations),
        resourceVersion: secret.metadata?.resourceVersion,
        exists: true,
      };
    } catch (err) {
      if (statusOf(err) === 404) return { state: undefined, resourceVersion: undefined, exists: false };
      if (statusOf(err) === 403)
        throw new SecretForbiddenError('get', this.#opts.namespace, this.#opts.secretName, err);
      throw err;
    }
  }

  async #readConfig(): Promise<V1MutatingWebhookConfiguration | undefined> {
    const name = this.#opts.webhookConfigName;
    if (name === undefined) return undefined;
    try {
      return await this.#opts.admission.readMutatingWebhookConfiguration({ name });
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  }

  /** Writes the new state; false when another replica changed the Secret first (re-plan). */
  async #write(read: ReadSecret, state: CertState): Promise<boolean> {
    const content = secretContent(state);
    const { core, namespace, secretName } = this.#opts;
    try {
      if (!read.exists) {
        const body: V1Secret = {
          metadata: {
            name: secretName,
            namespace,
            labels: { 'app.kubernetes.io/name': 'netmesh', 'app.kubernetes.io/component': 'webhook' },
            annotations: Object.fromEntries(
              Object.entries(content.annotations).filter((e): e is [string, string] => e[1] !== null),
            ),
          },
          // Opaque, like the one the chart pre-creates (empty, which kubernetes.io/tls does not
          // allow): a Secret's type is immutable, so both paths must agree on it.
          type: 'Opaque',
          data: Object.fromEntries(
            Object.entries(content.data).filter((e): e is [string, string] => e[1] !== null),
          ),
        };
        await core.createNamespacedSecret({ namespace, body });
      } else {
        // Merge patch: only our keys change; resourceVersion makes it a compare-and-swap.
        await core.patchNamespacedSecret(
          {
            name: secretName,
            namespace,
            body: {
              metadata: { resourceVersion: read.resourceVersion, annotations: content.annotations },
              data: content.data,
            },
          },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
      }
      return true;
    } catch (err) {
      // 409: a replica created or changed the Secret first; read the winner's on the next round.
      if (statusOf(err) === 409) return false;
      if (statusOf(err) === 403)
        throw new SecretForbiddenError(read.exists ? 'patch' : 'create', namespace, secretName, err);
      throw err;
    }
  }

  async #reconcile(): Promise<void> {
    if (this.#stopped) return;
    const { timings, names } = this.#opts;
    this.#nextDelayMs = undefined;
    let read = await this.#readSecret();
    for (let attempt = 0; ; attempt++) {
      let bundleHasNext = true;
      if (read.state?.next) {
        const config = await this.#readConfig();
        const next = read.state.next.bundle.ca.certPem;
        bundleHasNext =
          config === undefined ||
          (config.webhooks ?? []).every((w) =>
            bundleContains(Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString('utf8'), next),
          );
      }
      const action: CertAction = planCertificates({
        state: read.state,
        now: this.#now(),
        timings,
        names,
        bundleHasNext,
        forceRotate: this.#forceRotate,
      });
      if (action.kind === 'wait-propagation') {
        // Come back as soon as the switch is allowed instead of a whole resync later.
        this.#nextDelayMs = Math.max(50, action.until.getTime() - this.#now().getTime() + 50);
        break;
      }
      if (action.kind === 'none') break;
      if (attempt >= 5)
        throw new Error(`certificate Secret keeps changing under us (last step ${action.kind})`);
      const nextState = applyCertAction(read.state, action, { now: this.#now(), timings, names });
      if (!nextState) break;
      const wrote = await this.#write(read, nextState);
      if (wrote) {
        if (action.kind === 'stage') this.#forceRotate = false;
        this.#log.info(
          { step: action.kind, ...('reason' in action ? { reason: action.reason } : {}) },
          `certificates: ${action.kind}`,
        );
      }
      read = await this.#readSecret();
      // Each step changes what the apiserver must trust: bring the caBundle along before the next.
      if (read.state) await this.#ensureBundle(read);
    }
    if (!read.state) throw new Error('no certificates in the Secret after reconcile');
    // Serving the current cert never waits for the caBundle: its CA entered the bundle before
    // it was promoted (or it replaced an expired cert that nothing trusted anyway).
    this.#adopt(read.state);
    try {
      await this.#ensureBundle(read);
    } catch (err) {
      const e = err as { code?: number; message?: string };
      this.#log.warn(
        { webhookConfiguration: this.#opts.webhookConfigName, code: e.code, err: e.message?.split('\n')[0] },
        'cannot update the caBundle; retrying on the next resync',
      );
    }
  }

  /**
   * Makes every webhook's caBundle equal to the Secret's. Stale views must not undo a newer
   * replica's bundle, so: read the Secret, read the configuration, re-read the Secret (same
   * version, else give up this round) and patch with a JSON Patch `test` on the bundle that was
   * read, which fails if anyone changed it in between.
   */
  async #ensureBundle(read: ReadSecret): Promise<void> {
    if (!read.state) return;
    const desired = caBundleFor(read.state);
    this.#bundle = desired;
    const name = this.#opts.webhookConfigName;
    if (name === undefined) return;
    const config = await this.#readConfig();
    if (!config) return;
    const encoded = Buffer.from(desired, 'utf8').toString('base64');
    const ops: object[] = [];
    (config.webhooks ?? []).forEach((w, i) => {
      const have = w.clientConfig.caBundle;
      if (have !== undefined && sameBundle(Buffer.from(have, 'base64').toString('utf8'), desired)) return;
      const path = `/webhooks/${i}/clientConfig/caBundle`;
      // The index is only valid if the list did not change since the read.
      ops.push({ op: 'test', path: `/webhooks/${i}/name`, value: w.name });
      if (have !== undefined) ops.push({ op: 'test', path, value: have });
      ops.push({ op: 'add', path, value: encoded });
    });
    if (ops.length === 0) return;
    const again = await this.#readSecret();
    if (again.resourceVersion !== read.resourceVersion) return;
    try {
      await this.#opts.admission.patchMutatingWebhookConfiguration(
        { name, body: ops, fieldManager: 'netmesh-webhook' },
        setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
      );
      this.#log.info(
        { webhookConfiguration: name, cas: desired.match(/BEGIN CERTIFICATE/g)?.length ?? 0 },
        'caBundle updated',
      );
    } catch (err) {
      // 422 from a failed `test`: someone changed it in between; the next round re-reads.
      if (statusOf(err) === 422 || statusOf(err) === 409 || statusOf(err) === 404) return;
      throw err;
    }
  }

  #adopt(state: CertState): void {
    const cert = state.current.serving;
    const changed = this.#serving?.certPem !== cert.certPem;
    this.#currentCa = state.current.ca.certPem;
    if (changed) {
      this.#serving = toServing(cert.certPem, cert.keyPem);
      this.#log.info({ notAfter: this.#serving.notAfter.toISOString() }, 'serving certificate loaded');
      for (const listener of this.#listeners) listener(this.#serving);
    }
    for (const w of this.#rotationWaiters.splice(0)) {
      if (w.fromCa !== state.current.ca.certPem) w.resolve();
      else this.#rotationWaiters.push(w);
    }
    // A request is done once the CA it asked to replace is gone, whoever staged the new one:
    // a replica that lost the race to stage (or asked while a rotation was under way) would
    // otherwise keep its flag and rotate a second time after the overlap window.
    if (this.#rotationWaiters.length === 0) this.#forceRotate = false;
  }
}

export interface DirCertSourceOptions {
  dir: string;
  logger: Logger;
  pollMs?: number;
}

/** cert-manager (or any tool) mounts tls.crt/tls.key; we watch them and reload on change. */
export class DirCertSource implements CertSource {
  readonly #opts: DirCertSourceOptions;
  readonly #log: Logger;
  readonly #listeners: ((cert: ServingCertificate) => void)[] = [];
  #serving: ServingCertificate | undefined;
  #fingerprint = '';
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: DirCertSourceOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ component: 'certs', certDir: opts.dir });
  }

  /** mtime+size of both files (following symlinks: Secret volumes swap a ..data link). */
  #stamp(): string {
    return ['tls.crt', 'tls.key']
      .map((f) => {
        const s = statSync(join(this.#opts.dir, f));
        return `${s.mtimeMs}:${s.size}:${s.ino}`;
      })
      .join('|');
  }

  #load(): boolean {
    const certPem = readFileSync(join(this.#opts.dir, 'tls.crt'), 'utf8');
    const keyPem = readFileSync(join(this.#opts.dir, 'tls.key'), 'utf8');
    const fingerprint = createHash('sha256').update(certPem).update(keyPem).digest('hex');
    if (fingerprint === this.#fingerprint) return false;
    // Throws on a key that does not match the certificate (files caught mid-update).
    createSecureContext({ cert: certPem, key: keyPem });
    this.#serving = toServing(certPem, keyPem);
    this.#fingerprint = fingerprint;
    return true;
  }

  async start(): Promise<ServingCertificate> {
    let stamp = '';
    try {
      stamp = this.#stamp();
      this.#load();
    } catch (err) {
      throw new Error(`cannot load tls.crt/tls.key from ${this.#opts.dir}: ${(err as Error).message}`);
    }
    this.#log.info({ notAfter: this.#serving!.notAfter.toISOString() }, 'serving certificate loaded');
    const poll = (): void => {
      try {
        const now = this.#stamp();
        if (now !== stamp && this.#load()) {
          this.#log.info({ notAfter: this.#serving!.notAfter.toISOString() }, 'serving certificate reloaded');
          for (const l of this.#listeners) l(this.#serving!);
        }
        stamp = now;
      } catch (err) {
        // Keep serving the old pair; the next poll tries again.
        this.#log.warn({ err: (err as Error).message }, 'cannot reload the certificate files yet');
      }
      this.#timer = setTimeout(poll, this.#opts.pollMs ?? 5000);
      this.#timer.unref();
    };
    this.#timer = setTimeout(poll, this.#opts.pollMs ?? 5000);
    this.#timer.unref();
    return this.#serving!;
  }

  current(): ServingCertificate {
    if (!this.#serving) throw new Error('certificate source not started');
    return this.#serving;
  }

  caBundle(): string | undefined {
    return undefined;
  }

  onChange(listener: (cert: ServingCertificate) => void): void {
    this.#listeners.push(listener);
  }

  async sync(): Promise<void> {}

  rotateNow(): Promise<void> {
    return Promise.reject(new Error('certificates from --cert-dir are rotated by whoever writes them'));
  }

  async stop(): Promise<void> {
    clearTimeout(this.#timer);
  }
}
