// The live heap of another Node process, read through its inspector (started with
// --inspect=HOST:PORT): a full garbage collection first, then process.memoryUsage() inside
// it. Sampling heapUsed without a collection measures garbage that V8 has not reclaimed yet,
// not what the process holds.
import { createServer } from 'node:net';
import WebSocket from 'ws';

/** A port free now, for a child's inspector (which cannot report a port 0 it was given). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface HeapSample {
  heapUsedMiB: number;
  rssMiB: number;
}

export class HeapProbe {
  #next = 1;
  readonly #waiting = new Map<number, (result: unknown) => void>();

  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data: Buffer) => {
      const message = JSON.parse(data.toString()) as { id?: number; result?: unknown };
      if (message.id !== undefined) this.#waiting.get(message.id)?.(message.result);
      if (message.id !== undefined) this.#waiting.delete(message.id);
    });
  }

  static async connect(port: number): Promise<HeapProbe> {
    const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as { webSocketDebuggerUrl: string }[];
    const socket = new WebSocket(targets[0]!.webSocketDebuggerUrl);
    await new Promise<void>((resolve, reject) => socket.once('open', () => resolve()).once('error', reject));
    return new HeapProbe(socket);
  }

  #call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.#next++;
    return new Promise((resolve) => {
      this.#waiting.set(id, resolve);
      this.socket.send(JSON.stringify({ id, method, params }));
    });
  }

  /** Collects garbage in the process, then reads what it still holds. */
  async sample(): Promise<HeapSample> {
    await this.#call('HeapProfiler.collectGarbage');
    const result = (await this.#call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })) as { result: { value: string } };
    const usage = JSON.parse(result.result.value) as NodeJS.MemoryUsage;
    return { heapUsedMiB: usage.heapUsed / 1024 / 1024, rssMiB: usage.rss / 1024 / 1024 };
  }

  close(): void {
    this.socket.close();
  }
}
