// Progress while a run goes on, on stderr only, so stdout stays the summary (or the JSON).
// A terminal gets a live bar; a log or a pipe gets a plain line every few seconds.
import cliProgress from 'cli-progress';
import type { ProgressSink } from './scenarios/scenario.js';

export class BarProgress implements ProgressSink {
  readonly #bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: '{phase} |{bar}| {value}/{total} {detail}', hideCursor: true, clearOnComplete: false, etaBuffer: 50, fps: 5 },
    cliProgress.Presets.shades_classic,
  );
  #running = false;

  phase(name: string, total: number): void {
    if (this.#running) this.#bar.stop();
    this.#bar.start(total, 0, { phase: name.padEnd(12), detail: '' });
    this.#running = true;
  }

  update(value: number, detail = ''): void {
    if (this.#running) this.#bar.update(value, { detail });
  }

  done(): void {
    if (this.#running) this.#bar.stop();
    this.#running = false;
  }
}

export class LineProgress implements ProgressSink {
  #phase = '';
  #total = 0;
  #lastAt = 0;

  constructor(
    private readonly write: (line: string) => void,
    private readonly everyMs = 5000,
  ) {}

  phase(name: string, total: number): void {
    this.#phase = name;
    this.#total = total;
    this.#lastAt = Date.now();
    this.write(`${name}…`);
  }

  update(value: number, detail = ''): void {
    const now = Date.now();
    if (now - this.#lastAt < this.everyMs) return;
    this.#lastAt = now;
    this.write(`${this.#phase} ${value}/${this.#total}${detail ? ` ${detail}` : ''}`);
  }

  done(): void {}
}

export const silentProgress: ProgressSink = { phase: () => undefined, update: () => undefined, done: () => undefined };
