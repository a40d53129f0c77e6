import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseLoadgenOutput } from './loadgen.ts';
import { parseWrkOutput } from './wrk.ts';

describe('parseWrkOutput', () => {
  const stdout = [
    'Running 2s test @ https://127.0.0.1:4443/mutate',
    '  1 threads and 16 connections',
    'WRK_JSON {"requests":20000,"durationMicros":2000000,"bytes":3000000,"errors":{"connect":0,"read":0,"write":0,"status":0,"timeout":0},"latencyMicros":{"p50":900,"p99":2100,"p999":4000,"max":9000,"mean":1000.5}}',
  ].join('\n');
  it('reads the JSON line of wrk.lua', () => {
    const r = parseWrkOutput(stdout);
    assert.equal(r.requests, 20000);
    assert.equal(r.seconds, 2);
    assert.equal(r.requestsPerSecond, 10000);
    assert.equal(r.errors, 0);
    assert.equal(r.latencyMicros.p99, 2100);
  });
  it('adds up every kind of error, non-2xx answers included', () => {
    const r = parseWrkOutput(stdout.replace('"read":0', '"read":2').replace('"status":0', '"status":3'));
    assert.equal(r.errors, 5);
    assert.deepEqual(r.errorDetail, { connect: 0, read: 2, write: 0, status: 3, timeout: 0 });
  });
  it('says so when wrk printed no result', () => {
    assert.throws(() => parseWrkOutput('unable to connect to 127.0.0.1:1'), /no result line/);
  });
});

describe('parseLoadgenOutput', () => {
  it('one result per target, with the rate and the quantiles', () => {
    const all = parseLoadgenOutput(
      JSON.stringify({
        rate: 1000,
        conns: 16,
        bodyBytes: 2697,
        sliceSeconds: 1,
        targets: {
          baseline: { sent: 10, ok: 10, errors: 0, quantiles: null, percentilesMicros: { p99: 500 } },
          netmesh: {
            sent: 3000,
            ok: 3000,
            errors: 0,
            errorSample: [],
            statuses: { '200': 3000 },
            quantiles: [
              [0.5, 310],
              [0.99, 900],
            ],
            percentilesMicros: { p50: 310, p90: 500, p99: 900, p999: 2000 },
            maxMicros: 3000,
            meanMicros: 350,
            sendLatenessMicros: { p50: 20, p99: 80 },
            seconds: 3.001,
            responseBytes: 1418,
          },
        },
      }),
    );
    assert.deepEqual(Object.keys(all).sort(), ['baseline', 'netmesh']);
    const r = all['netmesh']!;
    assert.equal(r.rate, 1000);
    assert.equal(r.ok, 3000);
    assert.deepEqual(r.quantiles, [
      [0.5, 310],
      [0.99, 900],
    ]);
    assert.equal(r.percentilesMicros.p99, 900);
  });
  it('a run too short for any quantile gives an empty list (Go encodes it as null)', () => {
    const r = parseLoadgenOutput(
      JSON.stringify({
        rate: 1,
        targets: { a: { sent: 1, ok: 1, errors: 0, quantiles: null, percentilesMicros: {} } },
      }),
    );
    assert.deepEqual(r['a']!.quantiles, []);
  });
});
