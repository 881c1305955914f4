// The batch pipeline on in-memory streams: line splitting, order, the bounded window and
// back-pressure.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ndjsonLines, runBatch, type RawLine } from '../../provisioning/batches.js';

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

function chunks(...parts: (string | Buffer)[]): AsyncIterable<Buffer> {
  return (async function* () {
    for (const p of parts) {
      await Promise.resolve(); // one chunk per turn, as a socket delivers them
      yield typeof p === 'string' ? Buffer.from(p) : p;
    }
  })();
}

describe('ndjsonLines', () => {
  it('splits across chunks, on LF and CRLF, skips blank lines but counts them, and keeps a last line without LF', async () => {
    const lines = await collect(ndjsonLines(chunks('{"a":', '1}\r\n\n  \n{"b"', ':2}\n{"c":3}')));
    assert.deepEqual(lines, [
      { line: 1, text: '{"a":1}' },
      { line: 4, text: '{"b":2}' },
      { line: 5, text: '{"c":3}' },
    ]);
  });

  it('marks a line over the limit and carries on with the next one', async () => {
    const lines = await collect(ndjsonLines(chunks('x'.repeat(6), 'y'.repeat(6), '\nok\n', 'z'.repeat(11)), 10));
    assert.deepEqual(lines, [{ line: 1, tooLong: true }, { line: 2, text: 'ok' }, { line: 3, tooLong: true }]);
  });

  it('keeps a multi-byte character split between chunks', async () => {
    const bytes = Buffer.from('"é"\n');
    const lines = await collect(ndjsonLines(chunks(bytes.subarray(0, 2), bytes.subarray(2))));
    assert.deepEqual(lines, [{ line: 1, text: '"é"' }]);
  });
});

describe('runBatch', () => {
  const numbered = (n: number): RawLine[] => Array.from({ length: n }, (_, i) => ({ line: i + 1, text: String(i + 1) }));
  async function* slowly(lines: RawLine[], read: { count: number }) {
    for (const l of lines) {
      await Promise.resolve();
      read.count++;
      yield l;
    }
  }

  it('answers in input order though lines finish out of order, never more than the window in flight', async () => {
    let inFlight = 0;
    let most = 0;
    const handle = async (l: RawLine) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((resolve) => setTimeout(resolve, 'text' in l ? (Number(l.text) % 4) * 3 : 0));
      inFlight--;
      return { line: l.line };
    };
    const out = await collect(runBatch(slowly(numbered(40), { count: 0 }), handle, 8));
    assert.deepEqual(out, numbered(40).map((l) => `${JSON.stringify({ line: l.line })}\n`));
    assert.ok(most <= 8 && most > 1, `at most 8 in flight, saw ${most}`);
  });

  it('reads no further than the window while nobody takes the results', async () => {
    const read = { count: 0 };
    const results = runBatch(slowly(numbered(100), read), (l) => Promise.resolve(l.line), 5);
    const first = await results.next();
    assert.equal(first.value, '1\n');
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.ok(read.count <= 7, `read ${read.count} lines while holding one result`);
    await results.return(undefined);
  });

  it('sends a ready result before the next line arrives', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    async function* held() {
      yield { line: 1, text: 'a' } as RawLine;
      await gate; // the client has not sent line 2 yet
      yield { line: 2, text: 'b' } as RawLine;
    }
    const results = runBatch(held(), (l) => Promise.resolve(l.line), 10);
    assert.equal((await results.next()).value, '1\n');
    release();
    assert.equal((await results.next()).value, '2\n');
    assert.equal((await results.next()).done, true);
  });
});
