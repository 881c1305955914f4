// Factory batches end to end over HTTPS: NDJSON in, one result per line out as it is ready,
// coded errors for bad lines, idempotent retries, and a station sending one with curl.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { x509 } from '../../provisioning/pki/x509.js';
import { addStation, startFleet, type StationFiles, type TestFleet } from '../support/fleet.js';
import { httpsRequest, type HttpRequest } from '../support/https.js';
import { ecKeyWithCsr } from '../support/keys.js';
import { eventually } from '../support/wait.js';

const run = promisify(execFile);

interface Result {
  line: number;
  id?: string;
  serial?: string;
  certificate?: string;
  status?: string;
  replayed?: boolean;
  error?: { code: string; message: string };
}

describe('factory batches', { timeout: 90_000 }, () => {
  let fleet: TestFleet;
  let work: string;
  let station: StationFiles;
  let auditor: StationFiles;
  const csrs = new Map<string, string>();
  const csrFor = async (id: string) => {
    if (!csrs.has(id)) csrs.set(id, (await ecKeyWithCsr()).csrPem);
    return csrs.get(id)!;
  };
  const line = async (id: string) => JSON.stringify({ id, csr: await csrFor(id) });

  before(async () => {
    fleet = await startFleet();
    work = await mkdtemp(join(tmpdir(), 'batches-test-'));
    [station, auditor] = await Promise.all([addStation(fleet.dir, 'line-7', ['provisioner'], fleet.service.apiUrl), addStation(fleet.dir, 'audit-7', ['auditor'], fleet.service.apiUrl)]);
  });
  after(async () => {
    await fleet.close();
    await rm(work, { recursive: true, force: true });
  });

  const send = (body: string, key: string | undefined, extra: HttpRequest = {}) =>
    httpsRequest(`${fleet.service.apiUrl}/v1/batches`, fleet.ca, {
      raw: body,
      headers: { 'content-type': 'application/x-ndjson', ...(key ? { 'idempotency-key': key } : {}) },
      cert: station.certPem,
      key: station.keyPem,
      ...extra,
    });
  const results = (body: Buffer): Result[] => body.toString().trim().split('\n').map((l) => JSON.parse(l) as Result);
  const summary = (rs: Result[]) => rs.map((r) => [r.line, r.id ?? null, r.error?.code ?? (r.replayed ? 'replayed' : 'issued')]);

  it('answers every line in order, a certificate or a coded error; a bad line fails nothing', async () => {
    await fleet.api('/v1/devices', { body: { id: 'batch-lost' } });
    await fleet.api('/v1/devices/batch-lost/revoke', { method: 'POST' });
    const badCsr = JSON.stringify({ id: 'batch-bad-csr', csr: 'not a CSR' });
    const body = [
      await line('batch-a'),
      await line('batch-b'),
      '{"id": "batch-broken", ',
      badCsr,
      JSON.stringify({ id: 'bad id', csr: await csrFor('x') }),
      JSON.stringify({ id: 'batch-extra', csr: await csrFor('batch-extra'), role: 'admin' }),
      '',
      JSON.stringify({ id: 'batch-huge', csr: 'x'.repeat(70_000) }),
      JSON.stringify({ id: 'batch-lost', csr: await csrFor('batch-lost') }),
      await line('batch-c'),
      await line('batch-a'),
    ].join('\n');
    const response = await send(`${body}\n`, 'shift-1');
    assert.equal(response.status, 200);
    assert.equal(response.headers['content-type'], 'application/x-ndjson');
    const rs = results(response.body);
    assert.deepEqual(summary(rs), [
      [1, 'batch-a', 'issued'],
      [2, 'batch-b', 'issued'],
      [3, null, 'malformed_json'],
      [4, 'batch-bad-csr', 'csr_malformed'],
      [5, null, 'invalid_device_id'],
      [6, null, 'invalid_body'],
      [8, null, 'line_too_long'],
      [9, 'batch-lost', 'device_decommissioned'],
      [10, 'batch-c', 'issued'],
      [11, 'batch-a', 'replayed'],
    ]);
    assert.equal(rs[9]!.serial, rs[0]!.serial, 'the same line twice: one certificate');
    for (const r of rs.filter((x) => x.certificate)) {
      const cert = new x509.X509Certificate(r.certificate!);
      assert.equal(cert.subject, `CN=${r.id}`);
    }
    const certPath = join(work, 'batch-b.pem');
    await writeFile(certPath, rs[1]!.certificate!);
    await run('openssl', ['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', join(fleet.dir, 'pki', 'ca-bundle.pem'), certPath]);
    // The devices are registered by the batch, under the station's name.
    const view = await fleet.api('/v1/devices/batch-a');
    assert.deepEqual(view.json.certificates.map((c: { serial: string }) => c.serial), [rs[0]!.serial]);
    const audit = await fleet.api('/v1/audit?device=batch-a');
    assert.deepEqual(audit.json.entries.map((e: { actor: string; action: string }) => [e.actor, e.action]), [['station:line-7', 'device.created'], ['station:line-7', 'certificate.issued']]);
    assert.equal((await fleet.api('/v1/devices/batch-bad-csr')).status, 404, 'a refused line registers nothing');
  });

  it('returns the same certificates for a retried batch and mints nothing new; another key is another batch', async () => {
    const body = [await line('retry-a'), await line('retry-b')].join('\n');
    const first = results((await send(body, 'shift-2')).body);
    const again = results((await send(`${body}\n${await line('retry-c')}`, 'shift-2')).body);
    assert.deepEqual(summary(again), [[1, 'retry-a', 'replayed'], [2, 'retry-b', 'replayed'], [3, 'retry-c', 'issued']]);
    assert.deepEqual(again.slice(0, 2).map((r) => [r.serial, r.certificate]), first.map((r) => [r.serial, r.certificate]));
    assert.equal((await fleet.api('/v1/devices/retry-a')).json.certificates.length, 1);
    // The key is the caller's: under another key the same lines are a new batch.
    const other = results((await send(body, 'shift-3')).body);
    assert.deepEqual(summary(other), [[1, 'retry-a', 'issued'], [2, 'retry-b', 'issued']]);
    assert.notEqual(other[0]!.serial, first[0]!.serial);
  });

  it('streams: the first result arrives before the batch is sent in full', async () => {
    const url = new URL(`${fleet.service.apiUrl}/v1/batches`);
    const req = request(url, {
      method: 'POST',
      ca: fleet.ca,
      cert: station.certPem,
      key: station.keyPem,
      headers: { 'content-type': 'application/x-ndjson', 'idempotency-key': 'stream-1' },
    });
    req.write(`${await line('stream-a')}\n`);
    const response = await new Promise<IncomingMessage>((resolve) => req.once('response', resolve));
    const lines = createInterface({ input: response })[Symbol.asyncIterator]();
    const first = JSON.parse((await lines.next()).value as string) as Result;
    assert.deepEqual([first.line, first.id, first.error], [1, 'stream-a', undefined]);
    req.end(`${await line('stream-b')}\n`);
    const second = JSON.parse((await lines.next()).value as string) as Result;
    assert.deepEqual([second.line, second.id], [2, 'stream-b']);
    assert.equal((await lines.next()).done, true);
  });

  it('sends a batch with curl as a station does', async () => {
    const file = join(work, 'batch.ndjson');
    await writeFile(file, `${await line('curl-a')}\n${await line('curl-b')}\n`);
    const { stdout } = await run('curl', [
      '-sS',
      '--fail-with-body',
      '--cacert',
      join(fleet.dir, 'pki', 'ca-bundle.pem'),
      '--cert',
      station.certPath,
      '--key',
      station.keyPath,
      '-H',
      'Content-Type: application/x-ndjson',
      '-H',
      'Idempotency-Key: curl-shift',
      '--data-binary',
      `@${file}`,
      `${fleet.service.apiUrl}/v1/batches`,
    ]);
    assert.deepEqual(summary(results(Buffer.from(stdout))), [[1, 'curl-a', 'issued'], [2, 'curl-b', 'issued']]);
  });

  it('refuses a batch without a key, of another media type, or from a caller without the role', async () => {
    const body = await line('never');
    const code = (r: { status: number; json: { error?: { code?: string } } | undefined }) => [r.status, r.json?.error?.code];
    assert.deepEqual(code(await send(body, undefined)), [400, 'idempotency_key_invalid']);
    assert.deepEqual(code(await send(body, 'has spaces in it')), [400, 'idempotency_key_invalid']);
    assert.deepEqual(code(await send(body, 'k1', { headers: { 'content-type': 'text/plain', 'idempotency-key': 'k1' } })), [415, 'unsupported_media_type']);
    assert.deepEqual(code(await send(body, 'k1', { cert: auditor.certPem, key: auditor.keyPem })), [403, 'forbidden']);
    assert.equal((await fleet.api('/v1/devices/never')).status, 404, 'nothing was registered');
    const toCa = (ca: string) => httpsRequest(`${fleet.service.apiUrl}/v1/batches?ca=${ca}`, fleet.ca, { raw: body, headers: { 'content-type': 'application/x-ndjson', 'idempotency-key': 'k2' }, token: fleet.token });
    assert.deepEqual(code(await toCa('no-such-ca')), [404, 'ca_not_found']);
    assert.deepEqual(code(await toCa('root')), [409, 'ca_is_root']);
    assert.equal((await fleet.api('/v1/devices/never')).status, 404, 'still nothing registered');
  });
});

describe('factory batch retention', { timeout: 60_000 }, () => {
  const DAY = 24 * 60 * 60 * 1000;
  // The sweep runs every few milliseconds; the retention passes by stepping the clock.
  let offsetMs = 0;
  let fleet: TestFleet;
  let station: StationFiles;
  before(async () => {
    fleet = await startFleet({ clock: () => new Date(Date.now() + offsetMs), batchRetentionMs: 30 * DAY, batchSweepIntervalMs: 20 });
    station = await addStation(fleet.dir, 'line-8', ['provisioner'], fleet.service.apiUrl);
  });
  after(() => fleet.close());

  const send = async (body: string, key: string): Promise<Result[]> => {
    const response = await httpsRequest(`${fleet.service.apiUrl}/v1/batches`, fleet.ca, { raw: body, headers: { 'content-type': 'application/x-ndjson', 'idempotency-key': key }, cert: station.certPem, key: station.keyPem });
    assert.equal(response.status, 200, response.body.toString());
    return response.body.toString().trim().split('\n').map((l) => JSON.parse(l) as Result);
  };
  /** Resolves once a sweep has run on the service's clock at `at` or later. */
  const swept = (at: number) => eventually(() => fleet.logs.events('batch_retention_sweep').some((e) => Date.parse(e.at as string) >= at), 5000, 'a sweep');

  it('remembers a batch line for the retention period, then forgets it: a retry after that issues anew', async () => {
    const body = JSON.stringify({ id: 'kept-a', csr: (await ecKeyWithCsr()).csrPem });
    const [first] = await send(body, 'old-shift');
    assert.equal(first!.replayed, undefined);
    const sentAt = Date.now() + offsetMs;

    offsetMs += 29 * DAY;
    await swept(sentAt + 29 * DAY);
    const [replay] = await send(body, 'old-shift');
    assert.deepEqual([replay!.replayed, replay!.serial], [true, first!.serial], 'still within the retention');

    offsetMs += 2 * DAY;
    await swept(sentAt + 31 * DAY);
    const [anew] = await send(body, 'old-shift');
    assert.equal(anew!.replayed, undefined);
    assert.notEqual(anew!.serial, first!.serial);
    assert.ok(fleet.logs.events('batch_retention_sweep').some((e) => (e.forgotten as number) >= 1));
  });
});
