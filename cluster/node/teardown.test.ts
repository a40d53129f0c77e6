import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fingerprintDiff, iptablesFingerprint } from './teardown.ts';

test('a table that appeared with its default ACCEPT policies only is no change; rules and other policies are', () => {
  const fresh = ['-P INPUT ACCEPT', '-P FORWARD ACCEPT', '-P OUTPUT ACCEPT'];
  assert.deepEqual(iptablesFingerprint(fresh), []);
  // iptables missing before (no output), an untouched table after: the machine is as it was.
  assert.deepEqual(
    fingerprintDiff({ iptables: iptablesFingerprint([]) }, { iptables: iptablesFingerprint(fresh) }),
    [],
  );
  const touched = ['-P FORWARD DROP', '-N KUBE-SERVICES', '-A INPUT -j KUBE-SERVICES'];
  assert.deepEqual(iptablesFingerprint([...fresh, ...touched]), touched);
  assert.deepEqual(
    fingerprintDiff({ iptables: [] }, { iptables: iptablesFingerprint([...fresh, ...touched]) }),
    [
      'iptables: left behind -P FORWARD DROP',
      'iptables: left behind -N KUBE-SERVICES',
      'iptables: left behind -A INPUT -j KUBE-SERVICES',
    ],
  );
});
