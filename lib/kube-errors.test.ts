// The error shapes below are those client-node 2.x and undici really produce (captured from
// failing calls against closed ports, a TLS server with another CA, and a 403 answer).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApiException } from '@kubernetes/client-node';
import {
  describeKubeError,
  errorChain,
  formatKubeError,
  isRetryableStatus,
  serializeError,
  statusFromBody,
} from './kube-errors.ts';

const fetchFailed = (cause: unknown): TypeError => Object.assign(new TypeError('fetch failed'), { cause });
const sysError = (message: string, fields: Record<string, unknown>): Error =>
  Object.assign(new Error(message), fields);

const forbiddenBody = JSON.stringify({
  kind: 'Status',
  apiVersion: 'v1',
  status: 'Failure',
  message:
    'leases.coordination.k8s.io "netmesh-operator" is forbidden: User "x" cannot get resource "leases"',
  reason: 'Forbidden',
  details: { name: 'netmesh-operator', group: 'coordination.k8s.io', kind: 'leases' },
  code: 403,
});

describe('describeKubeError', () => {
  test('connection refused names the server and hints at the context, not RBAC', () => {
    const err = fetchFailed(
      sysError('connect ECONNREFUSED 127.0.0.1:39999', {
        errno: -111,
        code: 'ECONNREFUSED',
        syscall: 'connect',
        address: '127.0.0.1',
        port: 39999,
      }),
    );
    const info = describeKubeError(err, { server: 'https://127.0.0.1:39999' });
    assert.equal(info.category, 'connection-refused');
    assert.equal(info.message, 'connection refused at https://127.0.0.1:39999');
    assert.equal(info.retryable, true);
    assert.match(info.hint ?? '', /--context/);
    assert.doesNotMatch(info.hint ?? '', /RBAC/);
    assert.deepEqual(
      info.causes.map((c) => c.code ?? c.message),
      ['fetch failed', 'ECONNREFUSED'],
    );
    // Without the server, the address of the socket error says where.
    assert.equal(describeKubeError(err).message, 'connection refused at 127.0.0.1:39999');
  });

  test('unknown host', () => {
    const err = fetchFailed(
      sysError('getaddrinfo ENOTFOUND kube.example.invalid', {
        errno: -3008,
        code: 'ENOTFOUND',
        syscall: 'getaddrinfo',
        hostname: 'kube.example.invalid',
      }),
    );
    const info = describeKubeError(err, { server: 'https://kube.example.invalid:6443' });
    assert.equal(info.category, 'dns');
    assert.equal(
      info.message,
      'unknown host kube.example.invalid (https://kube.example.invalid:6443): the name does not resolve',
    );
    assert.equal(info.retryable, false);
    assert.equal(describeKubeError(fetchFailed(sysError('x', { code: 'EAI_AGAIN' }))).retryable, true);
  });

  test('x509: untrusted CA, wrong name with the certificate, expired', () => {
    const untrusted = describeKubeError(
      fetchFailed(
        sysError('unable to verify the first certificate', { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }),
      ),
      { server: 'https://127.0.0.1:6443' },
    );
    assert.equal(untrusted.category, 'tls');
    assert.equal(
      untrusted.message,
      'x509: the certificate presented by https://127.0.0.1:6443 is not signed by a trusted CA (UNABLE_TO_VERIFY_LEAF_SIGNATURE)',
    );
    assert.equal(untrusted.retryable, false);

    const altname = describeKubeError(
      fetchFailed(
        sysError(
          "Hostname/IP does not match certificate's altnames: IP: 127.0.0.1 is not in the cert's list: ",
          {
            code: 'ERR_TLS_CERT_ALTNAME_INVALID',
            reason: "IP: 127.0.0.1 is not in the cert's list: ",
            host: '127.0.0.1',
            cert: { subject: { CN: 'srv' }, issuer: { CN: 'ca' }, subjectaltname: 'DNS:srv.local' },
          },
        ),
      ),
      { server: 'https://127.0.0.1:6443' },
    );
    assert.equal(
      altname.message,
      'x509: the certificate presented by https://127.0.0.1:6443 (CN=srv, issued by CN=ca, valid for DNS:srv.local) is not valid for 127.0.0.1',
    );
    const expired = describeKubeError(
      fetchFailed(sysError('certificate has expired', { code: 'CERT_HAS_EXPIRED' })),
    );
    assert.match(expired.message, /has expired/);
    assert.match(expired.hint ?? '', /clock/);
  });

  test('reset, timeouts and aborts', () => {
    const reset = describeKubeError(
      fetchFailed(
        sysError('Client network socket disconnected before secure TLS connection was established', {
          code: 'ECONNRESET',
          host: '127.0.0.1',
          port: 4443,
        }),
      ),
    );
    assert.equal(reset.category, 'connection-reset');
    assert.equal(reset.message, 'connection to 127.0.0.1:4443 closed before an answer (ECONNRESET)');
    assert.equal(reset.retryable, true);
    const timeout = describeKubeError(
      new DOMException('The operation was aborted due to timeout', 'TimeoutError'),
    );
    assert.equal(timeout.category, 'timeout');
    assert.equal(timeout.retryable, true);
    const aborted = describeKubeError(new DOMException('This operation was aborted', 'AbortError'));
    assert.equal(aborted.category, 'aborted');
    assert.equal(aborted.retryable, false);
    const connectTimeout = describeKubeError(
      fetchFailed(sysError('Connect Timeout Error', { code: 'UND_ERR_CONNECT_TIMEOUT' })),
    );
    assert.equal(connectTimeout.category, 'timeout');
  });

  test('ApiException: the Status message, reason and details; RBAC hint only for 403', () => {
    const err = new ApiException(403, 'Unknown API Status Code!', forbiddenBody, {});
    const info = describeKubeError(err, { action: 'read Lease netmesh-system/netmesh-operator' });
    assert.equal(info.category, 'api');
    assert.equal(info.statusCode, 403);
    assert.equal(info.reason, 'Forbidden');
    assert.deepEqual(info.details, {
      name: 'netmesh-operator',
      group: 'coordination.k8s.io',
      kind: 'leases',
    });
    assert.equal(
      info.message,
      'cannot read Lease netmesh-system/netmesh-operator: leases.coordination.k8s.io "netmesh-operator" is forbidden: User "x" cannot get resource "leases"',
    );
    assert.match(info.hint ?? '', /RBAC/);
    assert.equal(info.retryable, false);
    assert.match(formatKubeError(info), /forbidden: User "x".*: this identity lacks an RBAC permission/);
  });

  test('ApiException: 404 without a Status is an API that is not served', () => {
    const info = describeKubeError(
      new ApiException(404, 'Unknown API Status Code!', '404 page not found\n', {}),
    );
    assert.equal(info.reason, 'NotFound');
    assert.match(info.message, /API is not served/);
    assert.match(info.hint ?? '', /CRD/);
    const notFound = describeKubeError(
      new ApiException(
        404,
        'x',
        { kind: 'Status', message: 'namespaces "nope" not found', reason: 'NotFound', code: 404 },
        {},
      ),
    );
    assert.equal(notFound.message, 'namespaces "nope" not found');
    assert.equal(notFound.hint, undefined);
  });

  test('retryable statuses follow client-go', () => {
    for (const c of [408, 409, 410, 429, 500, 502, 503, 504])
      assert.equal(isRetryableStatus(c), true, String(c));
    for (const c of [400, 401, 403, 404, 422, 501]) assert.equal(isRetryableStatus(c), false, String(c));
    const conflict = describeKubeError(
      new ApiException(409, 'x', '{"kind":"Status","reason":"Conflict"}', {}),
    );
    assert.equal(conflict.retryable, true);
    assert.equal(
      describeKubeError(new ApiException(401, 'x', '', {})).message,
      'the apiserver rejected the credentials (401 Unauthorized)',
    );
  });

  test('plain errors and non-errors', () => {
    const plain = describeKubeError(new Error('something broke\nsecond line'));
    assert.equal(plain.category, 'unknown');
    assert.equal(plain.message, 'something broke');
    assert.equal(describeKubeError('a string').message, 'a string');
    const wrapped = describeKubeError(new Error('outer', { cause: new Error('inner') }));
    assert.equal(wrapped.message, 'outer: inner');
  });

  test('errorChain follows causes and AggregateError members without looping', () => {
    const a: { message: string; cause?: unknown } = { message: 'a' };
    a.cause = a;
    assert.equal(errorChain(a).length, 1);
    const agg = fetchFailed(
      new AggregateError([sysError('connect ECONNREFUSED ::1:1', { code: 'ECONNREFUSED' })]),
    );
    assert.equal(describeKubeError(agg).category, 'connection-refused');
  });

  test('statusFromBody reads string and object bodies, ignores other JSON', () => {
    assert.equal(statusFromBody(forbiddenBody)?.reason, 'Forbidden');
    assert.equal(statusFromBody({ kind: 'Status', message: 'm' })?.message, 'm');
    assert.equal(statusFromBody('{"kind":"Pod"}'), undefined);
    assert.equal(statusFromBody('not json'), undefined);
  });
});

describe('serializeError (pino)', () => {
  test('shows the cause chain of a fetch failure', () => {
    const out = serializeError(
      fetchFailed(
        sysError('connect ECONNREFUSED 10.0.0.1:443', {
          code: 'ECONNREFUSED',
          address: '10.0.0.1',
          port: 443,
        }),
      ),
    ) as Record<string, unknown>;
    assert.equal(out['message'], 'connection refused at 10.0.0.1:443');
    assert.equal(out['reason'], 'ECONNREFUSED');
    assert.equal(out['retryable'], true);
    assert.deepEqual(out['causes'], [
      { name: 'TypeError', message: 'fetch failed' },
      { name: 'Error', message: 'connect ECONNREFUSED 10.0.0.1:443', code: 'ECONNREFUSED' },
    ]);
    assert.equal(out['stack'], undefined);
  });

  test('keeps the stack of unclassified errors, passes summaries through', () => {
    const out = serializeError(new RangeError('bug')) as Record<string, unknown>;
    assert.equal(out['type'], 'RangeError');
    assert.match(String(out['stack']), /RangeError: bug/);
    const summary = { name: 'x', message: 'already summarised' };
    assert.equal(serializeError(summary), summary);
  });
});
