import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parseStatCpuTicks, parseStatusMemory, readCpuSeconds, readMemory } from './procfs.ts';

describe('procfs parsing', () => {
  it('VmRSS and VmHWM in bytes', () => {
    const status = 'Name:\tnode\nVmHWM:\t  183324 kB\nVmRSS:\t  179904 kB\nThreads:\t11\n';
    assert.deepEqual(parseStatusMemory(status), { rss: 179904 * 1024, peakRss: 183324 * 1024 });
    assert.throws(() => parseStatusMemory('Name:\tnode\n'), /no VmRSS/);
  });
  it('utime + stime, with spaces and parentheses in the command name', () => {
    const stat = '4242 (node (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 11 0 1000 0 0';
    assert.equal(parseStatCpuTicks(stat), 1234 + 567);
  });
  it('reads this process', () => {
    assert.ok(readMemory(process.pid).rss > 1e6);
    assert.ok(readCpuSeconds(process.pid) >= 0);
    assert.equal(
      parseStatCpuTicks(readFileSync('/proc/self/stat', 'utf8')) >= 0,
      true,
      'the live format parses',
    );
  });
});
