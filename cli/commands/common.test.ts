import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { validateTimings } from '../../runtime/lease-decision.ts';
import { FlagError, parseFlags } from '../flags.ts';
import { checkLeaderElectionTimings, operatorFlags, operatorOptionsFromFlags } from './common.ts';

const parse = (...argv: string[]) => parseFlags('operator', '', argv, operatorFlags).values;

describe('leader-election flags', () => {
  test('the CLI refuses exactly what the elector refuses', () => {
    const values = [0, 500, 1000, 1200, 1201, 2000, 2400, 2401, 5000, 10_000, 15_000];
    for (const leaseDurationMs of values)
      for (const renewDeadlineMs of values)
        for (const retryPeriodMs of values) {
          const t = { leaseDurationMs, renewDeadlineMs, retryPeriodMs };
          let elector = true;
          try {
            validateTimings(t);
          } catch {
            elector = false;
          }
          let cli = true;
          try {
            checkLeaderElectionTimings(t);
          } catch (err) {
            assert.ok(err instanceof FlagError);
            assert.doesNotMatch(err.message, /Ms\b/, 'flag names, not option names');
            cli = false;
          }
          assert.equal(cli, elector, JSON.stringify(t));
        }
  });

  test('defaults, Go durations, and --leader-elect=false', () => {
    const d = operatorOptionsFromFlags(parse());
    assert.equal(d.leaderElect, true);
    assert.deepEqual([d.leaseDurationMs, d.renewDeadlineMs, d.retryPeriodMs], [15_000, 10_000, 2_000]);
    const o = operatorOptionsFromFlags(
      parse('--lease-duration', '1m30s', '--renew-deadline=1m', '--retry-period', '2.5s'),
    );
    assert.deepEqual([o.leaseDurationMs, o.renewDeadlineMs, o.retryPeriodMs], [90_000, 60_000, 2_500]);
    assert.equal(operatorOptionsFromFlags(parse('--leader-elect=false')).leaderElect, false);
    assert.equal(operatorOptionsFromFlags(parse('--leader-elect', 'false')).leaderElect, false);
    assert.equal(operatorOptionsFromFlags(parse('--no-leader-elect')).leaderElect, false);
    assert.equal(operatorOptionsFromFlags(parse('--leader-elect')).leaderElect, true);
    assert.throws(
      () => operatorOptionsFromFlags(parse('--netmesh-namespace', '')),
      /--netmesh-namespace must not be empty/,
    );
  });
});
