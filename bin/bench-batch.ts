// `npm run bench -- batch`: memory of the service while it answers one NDJSON batch of
// 100,000 lines through POST /v1/batches, read from its own process every 10,000 lines: the
// live V8 heap after a full collection (through its inspector) and RSS. Run twice with the
// same Idempotency-Key: the first mints every line (the fleet graph grows by a device and a
// certificate per line, as it would however they were enrolled); the second replays them,
// so what the batch pipeline itself holds shows on its own.
import { generateKeyPairSync, sign } from 'node:crypto';
import { request } from 'node:https';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { freePort, HeapProbe, type HeapSample } from '../firmware-sim/bench/heap.js';
import { startOurs } from '../firmware-sim/bench/ours.js';
import { bitString, oid, sequence, tlv } from '../provisioning/pki/der.js';

export interface BatchRun {
  lines: number;
  issued: number;
  replayed: number;
  errors: Record<string, number>;
  wallSeconds: number;
  linesPerSecond: number;
  /** Live heap and RSS before the batch and after every 10,000 answered lines. */
  samples: (HeapSample & { answered: number })[];
  /** Growth of the live heap per answered line, fitted over the samples. */
  heapKiBPerLine: number;
}

export interface BatchFigures {
  mint: BatchRun;
  replay: BatchRun;
}

const ECDSA_WITH_SHA256 = sequence(oid('1.2.840.10045.4.3.2'));
const COMMON_NAME = oid('2.5.4.3');

/** A PKCS#10 request for a fresh P-256 key, written as DER here: the client must not be the bottleneck. */
function csrFor(id: string): string {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const info = sequence(
    tlv(0x02, Buffer.from([0])),
    sequence(tlv(0x31, sequence(COMMON_NAME, tlv(0x0c, Buffer.from(id))))),
    publicKey.export({ type: 'spki', format: 'der' }),
    tlv(0xa0),
  );
  const der = sequence(info, ECDSA_WITH_SHA256, bitString(sign('sha256', info, { key: privateKey, dsaEncoding: 'der' })));
  return `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
}

const SAMPLE_EVERY = 10_000;

/** Least-squares slope of heap against answered lines, in KiB per line. */
function slopeKiB(samples: BatchRun['samples']): number {
  const n = samples.length;
  const mx = samples.reduce((a, s) => a + s.answered, 0) / n;
  const my = samples.reduce((a, s) => a + s.heapUsedMiB, 0) / n;
  const cov = samples.reduce((a, s) => a + (s.answered - mx) * (s.heapUsedMiB - my), 0);
  const varx = samples.reduce((a, s) => a + (s.answered - mx) ** 2, 0);
  return varx === 0 ? 0 : (cov / varx) * 1024;
}

async function oneBatch(service: { apiUrl: string; ca: string; token: string }, probe: HeapProbe, lines: number, key: string, say: (s: string) => void): Promise<BatchRun> {
  const samples: BatchRun['samples'] = [{ answered: 0, ...(await probe.sample()) }];
  const sampling: Promise<void>[] = [];
  const started = performance.now();
  const run: Pick<BatchRun, 'lines' | 'issued' | 'replayed' | 'errors'> = { lines, issued: 0, replayed: 0, errors: {} };
  await new Promise<void>((resolve, reject) => {
    const req = request(`${service.apiUrl}/v1/batches`, {
      method: 'POST',
      ca: service.ca,
      headers: { authorization: `Bearer ${service.token}`, 'content-type': 'application/x-ndjson', 'idempotency-key': key },
    });
    req.on('error', reject);
    req.on('response', (res) => {
      const results = createInterface({ input: res });
      results.on('line', (line) => {
        const r = JSON.parse(line) as { replayed?: boolean; error?: { code: string } };
        if (r.error) run.errors[r.error.code] = (run.errors[r.error.code] ?? 0) + 1;
        else if (r.replayed) run.replayed++;
        else run.issued++;
        const answered = run.issued + run.replayed + Object.values(run.errors).reduce((a, b) => a + b, 0);
        if (answered % SAMPLE_EVERY === 0) {
          say(`  ${key}: ${answered}/${lines}`);
          sampling.push(probe.sample().then((sample) => void samples.push({ answered, ...sample })));
        }
      });
      results.on('close', () => resolve());
      res.on('error', reject);
    });
    // Lines are made as the request stream asks for them: back-pressure reaches this loop.
    Readable.from(
      (function* () {
        for (let i = 0; i < lines; i++) yield `${JSON.stringify({ id: `bench-batch-${i}`, csr: csrFor(`bench-batch-${i}`) })}\n`;
      })(),
    ).pipe(req);
  });
  const wallSeconds = (performance.now() - started) / 1000;
  await Promise.all(sampling);
  samples.sort((a, b) => a.answered - b.answered);
  return { ...run, wallSeconds, linesPerSecond: lines / wallSeconds, samples, heapKiBPerLine: slopeKiB(samples) };
}

export async function batchBench(lines: number, say: (s: string) => void): Promise<BatchFigures> {
  // The service as operators run it, its log (a line per certificate) included, with an
  // inspector the probe collects garbage and reads memory through.
  const inspectPort = await freePort();
  const service = await startOurs([], undefined, [`--inspect=127.0.0.1:${inspectPort}`]);
  const probe = await HeapProbe.connect(inspectPort);
  try {
    say(`batch of ${lines} lines, minting`);
    const mint = await oneBatch(service, probe, lines, 'bench-batch', say);
    say(`the same batch again, replayed`);
    const replay = await oneBatch(service, probe, lines, 'bench-batch', say);
    return { mint, replay };
  } finally {
    probe.close();
    await service.stop();
  }
}
