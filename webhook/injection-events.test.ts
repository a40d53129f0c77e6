// Where the injection Events go and when there is one; the queue in front of the recorder,
// with a fake recorder and a fake ReplicaSet reader. No cluster.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import type { EventInput, EventTarget } from '../runtime/events.ts';
import type { AdmissionRequest, AdmitResult } from './admission.ts';
import { eventPlacement, InjectionEvents, injectionEvent } from './injection-events.ts';

const owned = (kind: string, apiVersion: string, name: string) => ({
  metadata: {
    generateName: `${name}-`,
    ownerReferences: [{ apiVersion, kind, name, uid: `uid-${name}`, controller: true }],
  },
});

describe('eventPlacement', () => {
  test('a ReplicaSet owner is looked up (for its Deployment); other owners are the target', () => {
    assert.deepEqual(eventPlacement(owned('ReplicaSet', 'apps/v1', 'web-5d9'), 'ns'), {
      replicaSet: { name: 'web-5d9', namespace: 'ns', uid: 'uid-web-5d9' },
    });
    for (const [kind, apiVersion] of [
      ['StatefulSet', 'apps/v1'],
      ['DaemonSet', 'apps/v1'],
      ['Job', 'batch/v1'],
    ] as const) {
      assert.deepEqual(eventPlacement(owned(kind, apiVersion, 'x'), 'ns'), {
        target: { apiVersion, kind, metadata: { name: 'x', namespace: 'ns', uid: 'uid-x' } },
      });
    }
  });

  test('a Pod without an owner is its own target; without a name either, there is none', () => {
    assert.deepEqual(eventPlacement({ metadata: { name: 'p' } }, 'ns'), {
      target: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'ns' } },
    });
    assert.deepEqual(eventPlacement({ metadata: { generateName: 'p-' } }, 'ns', 'from-request'), {
      target: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'from-request', namespace: 'ns' } },
    });
    assert.equal(eventPlacement({ metadata: { generateName: 'p-' } }, 'ns'), undefined);
    assert.equal(eventPlacement('not a pod', 'ns'), undefined);
  });
});

describe('injectionEvent', () => {
  const result = (outcome: AdmitResult['outcome'], reason: string, message = 'm') => ({
    outcome,
    reason,
    message,
  });
  test('Injected: one message for every Pod of a workload and template', () => {
    assert.deepEqual(injectionEvent({}, result('injected', 'Injected', 'NamespaceEnabled: x'), 'h1'), {
      reason: 'Injected',
      message: 'Envoy sidecar injected into new Pods (template h1; NamespaceEnabled: x)',
    });
  });
  test('InjectionSkipped with the reason; nothing for quiet skips, non-Pods and dry runs', () => {
    assert.deepEqual(
      injectionEvent({}, result('skipped', 'NameConflict', 'a container is named envoy'), 'h'),
      {
        reason: 'InjectionSkipped',
        message: 'sidecar not injected (NameConflict): a container is named envoy',
      },
    );
    assert.equal(injectionEvent({}, result('skipped', 'AlreadyInjected'), 'h'), undefined);
    assert.equal(injectionEvent({}, result('skipped', 'NotCreate'), 'h'), undefined);
    assert.equal(injectionEvent({}, result('not_pod', 'NotAPod'), 'h'), undefined);
    assert.equal(injectionEvent({ dryRun: true }, result('injected', 'Injected'), 'h'), undefined);
    assert.equal(injectionEvent({ dryRun: true }, result('skipped', 'NameConflict'), 'h'), undefined);
  });
});

describe('InjectionEvents', () => {
  const log = pino({ level: 'silent' });
  const request = (object: unknown, extra: Partial<AdmissionRequest> = {}): AdmissionRequest => ({
    uid: 'u',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    operation: 'CREATE',
    namespace: 'ns',
    object,
    ...extra,
  });
  const injected: AdmitResult = {
    response: { uid: 'u', allowed: true },
    outcome: 'injected',
    reason: 'Injected',
    message: 'NamespaceEnabled: on',
    podName: 'p',
    namespace: 'ns',
  };
  const fakes = (
    opts: { rsOwner?: string; rsFails?: boolean; block?: Promise<void>; muted?: Set<string> } = {},
  ) => {
    const recorded: { target: EventTarget; input: EventInput }[] = [];
    const reads: string[] = [];
    const asked: string[] = [];
    const recorder = {
      record: async (target: EventTarget, input: EventInput) => {
        await opts.block;
        recorded.push({ target, input });
      },
      flush: async () => {},
      spamFiltered: (target: EventTarget) => {
        asked.push(`${target.kind}/${target.metadata?.name}`);
        return opts.muted?.has(target.metadata?.name ?? '') ?? false;
      },
    };
    const apps = {
      readNamespacedReplicaSet: async ({ name }: { name: string; namespace: string }) => {
        reads.push(name);
        if (opts.rsFails) throw Object.assign(new Error('forbidden'), { code: 403 });
        return {
          metadata: {
            name,
            ownerReferences: opts.rsOwner
              ? [
                  {
                    apiVersion: 'apps/v1',
                    kind: 'Deployment',
                    name: opts.rsOwner,
                    uid: 'd-uid',
                    controller: true,
                  },
                ]
              : [],
          },
        };
      },
    };
    return { recorded, reads, asked, recorder, apps };
  };

  test("a rollout's Pods: one cached ReplicaSet read, every Event on the Deployment", async () => {
    const f = fakes({ rsOwner: 'web' });
    // biome-ignore lint/suspicious/noExplicitAny: a structural fake of AppsV1Api
    const ev = new InjectionEvents({ recorder: f.recorder, apps: f.apps as any, log });
    for (let i = 0; i < 20; i++) ev.note(request(owned('ReplicaSet', 'apps/v1', 'web-5d9')), injected, 'h');
    assert.equal(f.recorded.length, 0, 'nothing written before the answer is out');
    await ev.flush();
    assert.equal(f.recorded.length, 20);
    assert.deepEqual(f.reads, ['web-5d9']);
    assert.ok(f.recorded.every((r) => r.target.kind === 'Deployment' && r.target.metadata?.name === 'web'));
    assert.equal(f.recorded[0]!.input.reason, 'Injected');
    assert.equal(f.recorded[0]!.input.type, 'Normal');
  });

  test('what the spam filter would drop is not queued, once the target is known without I/O', async () => {
    const f = fakes({ rsOwner: 'web', muted: new Set(['web', 'bare']) });
    // biome-ignore lint/suspicious/noExplicitAny: a structural fake of AppsV1Api
    const ev = new InjectionEvents({ recorder: f.recorder, apps: f.apps as any, log });
    ev.note(request({ metadata: { name: 'bare' } }), injected, 'h');
    ev.note(request({ metadata: { name: 'other' } }), injected, 'h');
    // The ReplicaSet's owner is not known yet: queued, and its lookup finds the Deployment.
    ev.note(request(owned('ReplicaSet', 'apps/v1', 'web-5d9')), injected, 'h');
    await ev.flush();
    assert.deepEqual(
      f.recorded.map((r) => r.target.metadata?.name),
      ['other', 'web'],
    );
    // Now the owner is cached: the Deployment's filter is asked first, and the Event dropped.
    ev.note(request(owned('ReplicaSet', 'apps/v1', 'web-5d9')), injected, 'h');
    await ev.flush();
    assert.equal(f.recorded.length, 2);
    assert.deepEqual(f.asked, ['Pod/bare', 'Pod/other', 'Deployment/web']);
  });

  test('a ReplicaSet that cannot be read (RBAC) gets the Event itself', async () => {
    const f = fakes({ rsFails: true });
    // biome-ignore lint/suspicious/noExplicitAny: a structural fake of AppsV1Api
    const ev = new InjectionEvents({ recorder: f.recorder, apps: f.apps as any, log });
    ev.note(request(owned('ReplicaSet', 'apps/v1', 'rs')), injected, 'h');
    await ev.flush();
    assert.equal(f.recorded[0]!.target.kind, 'ReplicaSet');
  });

  test('bounded: a full queue drops, never blocks; dry runs are not queued', async () => {
    let release!: () => void;
    const block = new Promise<void>((r) => {
      release = r;
    });
    const f = fakes({ block });
    // biome-ignore lint/suspicious/noExplicitAny: a structural fake of AppsV1Api
    const ev = new InjectionEvents({ recorder: f.recorder, apps: f.apps as any, log, maxPending: 3 });
    ev.note(request({ metadata: { name: 'dry' } }, { dryRun: true }), injected, 'h');
    for (let i = 0; i < 10; i++) ev.note(request({ metadata: { name: `p${i}` } }), injected, 'h');
    assert.equal(ev.dropped, 7);
    release();
    await ev.flush();
    assert.deepEqual(
      f.recorded.map((r) => r.target.metadata?.name),
      ['p0', 'p1', 'p2'],
    );
    await ev.stop();
    ev.note(request({ metadata: { name: 'late' } }), injected, 'h');
    await ev.flush();
    assert.equal(f.recorded.length, 3, 'nothing after stop');
  });
});
