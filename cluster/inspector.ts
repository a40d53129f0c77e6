// Measuring a running netmesh process from outside (the fault suite, the benchmarks): through the V8 inspector it was started
// with (NODE_OPTIONS=--inspect=127.0.0.1:<port>), force a full garbage collection and read
// process.memoryUsage(). The product carries no hook for this; the test drives the runtime's
// own debugging protocol, as a person would with Chrome DevTools.

export interface Memory {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
}

export class Inspector {
  readonly #ws: WebSocket;
  #id = 0;
  readonly #pending = new Map<number, (v: unknown) => void>();

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.addEventListener('message', (ev) => {
      const msg = JSON.parse(String(ev.data)) as { id?: number; result?: unknown; error?: unknown };
      if (msg.id === undefined) return;
      this.#pending.get(msg.id)?.(
        msg.error ? Promise.reject(new Error(JSON.stringify(msg.error))) : msg.result,
      );
      this.#pending.delete(msg.id);
    });
  }

  static async connect(port: number, timeoutMs = 30_000): Promise<Inspector> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as {
          webSocketDebuggerUrl: string;
        }[];
        const ws = new WebSocket(targets[0]!.webSocketDebuggerUrl);
        await new Promise<void>((resolve, reject) => {
          ws.addEventListener('open', () => resolve(), { once: true });
          ws.addEventListener('error', () => reject(new Error('inspector websocket failed')), { once: true });
        });
        return new Inspector(ws);
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  send(method: string, params: object = {}): Promise<unknown> {
    const id = ++this.#id;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, (v) => Promise.resolve(v).then(resolve, reject));
      this.#ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** Memory after a forced full GC (twice: the first may only run finalizers). */
  async memoryAfterGc(): Promise<Memory> {
    await this.send('HeapProfiler.enable');
    await this.send('HeapProfiler.collectGarbage');
    await this.send('HeapProfiler.collectGarbage');
    const res = (await this.send('Runtime.evaluate', {
      expression: 'JSON.stringify(process.memoryUsage())',
      returnByValue: true,
    })) as { result: { value: string } };
    return JSON.parse(res.result.value) as Memory;
  }

  close(): void {
    this.#ws.close();
  }
}

export const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(0)} MB`;
