// Captures the service's pino output in memory so tests can assert on structured events.
import { Writable } from 'node:stream';

export interface LogEvent {
  level: number;
  event?: string;
  reason?: string;
  [key: string]: unknown;
}

export class LogCapture extends Writable {
  readonly lines: LogEvent[] = [];
  #waiters: { predicate: (e: LogEvent) => boolean; resolve: (e: LogEvent) => void }[] = [];
  #partial = '';

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    const text = this.#partial + chunk.toString('utf8');
    const parts = text.split('\n');
    this.#partial = parts.pop() ?? '';
    for (const part of parts) {
      if (!part.trim()) continue;
      const event = JSON.parse(part) as LogEvent;
      this.lines.push(event);
      this.#waiters = this.#waiters.filter((w) => (w.predicate(event) ? (w.resolve(event), false) : true));
    }
    done();
  }

  events(event: string, match: Partial<LogEvent> = {}): LogEvent[] {
    return this.lines.filter((e) => e.event === event && Object.entries(match).every(([k, v]) => e[k] === v));
  }

  refusals(match: Partial<LogEvent> = {}): LogEvent[] {
    return this.events('refusal', match);
  }

  /** Resolves with the first event (already logged or still to come) that matches. */
  waitFor(event: string, match: Partial<LogEvent> = {}, timeoutMs = 10_000): Promise<LogEvent> {
    const predicate = (e: LogEvent) => e.event === event && Object.entries(match).every(([k, v]) => e[k] === v);
    const seen = this.lines.find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${event} ${JSON.stringify(match)} within ${timeoutMs} ms`)), timeoutMs);
      this.#waiters.push({
        predicate,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      });
    });
  }
}
