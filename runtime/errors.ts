// Shared by the runtime shells' logging.

/**
 * The fields of an error worth logging. client-node's ApiException carries the whole response
 * (headers included) and a multi-line message; the apiserver's Status message and reason in
 * its body are what says what went wrong.
 */
export function describeError(err: unknown): Record<string, unknown> {
  if (err === null || typeof err !== 'object') return { message: String(err) };
  const e = err as {
    name?: unknown;
    message?: unknown;
    code?: unknown;
    statusCode?: unknown;
    body?: unknown;
  };
  const out: Record<string, unknown> = {};
  if (typeof e.name === 'string') out['name'] = e.name;
  if (typeof e.message === 'string') out['message'] = e.message.split('\n')[0];
  if (e.code !== undefined) out['code'] = e.code;
  if (e.statusCode !== undefined) out['statusCode'] = e.statusCode;
  const status = statusOf(e.body);
  if (status?.message) out['status'] = status.message;
  if (status?.reason) out['reason'] = status.reason;
  return out;
}

function statusOf(body: unknown): { message?: string; reason?: string } | undefined {
  let v = body;
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch {
      return undefined;
    }
  }
  if (v === null || typeof v !== 'object') return undefined;
  const s = v as { message?: unknown; reason?: unknown };
  const out: { message?: string; reason?: string } = {};
  if (typeof s.message === 'string') out.message = s.message;
  if (typeof s.reason === 'string') out.reason = s.reason;
  return out;
}
