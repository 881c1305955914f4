// Factory batches as streams: NDJSON lines in, one result line out per line, in order.
// Nothing is buffered beyond a bounded window: the next line is read only when a slot is
// free, and a result is produced only when the reader wants it, so back-pressure runs from
// the response socket to the request socket and memory does not grow with the batch.

/** A line longer than this is answered with line_too_long and skipped to its end. */
export const MAX_LINE_BYTES = 64 * 1024;
/** Lines in flight at once: enough for their records to share durable commits. */
export const LINES_IN_FLIGHT = 256;

export type RawLine = { line: number; text: string } | { line: number; tooLong: true };

const NEWLINE = 0x0a;

/** Splits a byte stream into lines (LF or CRLF); blank lines are skipped but counted. */
export async function* ndjsonLines(input: AsyncIterable<Buffer | string>, maxBytes = MAX_LINE_BYTES): AsyncGenerator<RawLine> {
  let line = 0;
  let parts: Buffer[] = [];
  let size = 0;
  let tooLong = false;
  const finish = function* (): Generator<RawLine> {
    line++;
    if (tooLong) yield { line, tooLong: true };
    else if (size > 0) {
      const text = Buffer.concat(parts, size).toString('utf8').replace(/\r$/, '');
      if (text.trim() !== '') yield { line, text };
    }
    parts = [];
    size = 0;
    tooLong = false;
  };
  for await (const chunk of input) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    let start = 0;
    for (let nl = bytes.indexOf(NEWLINE, start); ; nl = bytes.indexOf(NEWLINE, start)) {
      const end = nl === -1 ? bytes.length : nl;
      if (!tooLong && size + (end - start) > maxBytes) {
        tooLong = true;
        parts = [];
        size = 0;
      }
      if (!tooLong && end > start) {
        parts.push(bytes.subarray(start, end));
        size += end - start;
      }
      if (nl === -1) break;
      yield* finish();
      start = nl + 1;
    }
  }
  if (size > 0 || tooLong) yield* finish();
}

/**
 * Runs `handle` over every line with at most `inFlight` lines pending, yielding each result
 * as one NDJSON line in input order, as soon as it and those before it are ready. `handle`
 * must not reject: a line's failure is its result.
 */
export async function* runBatch<T>(lines: AsyncIterable<RawLine>, handle: (line: RawLine) => Promise<T>, inFlight = LINES_IN_FLIGHT): AsyncGenerator<string> {
  const input = lines[Symbol.asyncIterator]();
  const pending: { done: Promise<void>; settled: boolean; value?: T }[] = [];
  const track = (work: Promise<T>) => {
    const entry: (typeof pending)[number] = { settled: false, done: Promise.resolve() };
    entry.done = work.then((value) => {
      entry.value = value;
      entry.settled = true;
    });
    return entry;
  };
  // A read may still be pending when the reader goes away (a dropped connection): it must
  // not become an unhandled rejection then.
  const read = () => {
    const reading = input.next();
    reading.catch(() => undefined);
    return reading;
  };
  let next: Promise<IteratorResult<RawLine>> | undefined = read();
  try {
    for (;;) {
      while (pending[0]?.settled) yield `${JSON.stringify(pending.shift()!.value)}\n`;
      if (!next && pending.length === 0) return;
      if (next && pending.length < inFlight) {
        // A free slot: take the next line, unless the oldest result is ready first.
        const reading: Promise<IteratorResult<RawLine>> = next;
        const head = pending[0]?.done.then(() => undefined);
        const got = await (head ? Promise.race([reading, head]) : reading);
        if (!got) continue; // the oldest result is ready: send it before reading on
        if (got.done) next = undefined;
        else {
          pending.push(track(handle(got.value)));
          next = read();
        }
      } else {
        await pending[0]!.done; // the window is full, or the input ended: wait for the oldest
      }
    }
  } finally {
    if (next) void input.return?.(undefined).catch(() => undefined);
  }
}
