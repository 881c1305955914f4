// `npm run bench -- crl`: a CRL of 100,000 entries, as the service produces it. The DER
// signature alone, then the whole rebuild from the registry (the revoked certificates read
// from SQLite, the CRL written as DER and signed, its PEM file replaced), and a revocation
// acknowledged with such a CRL rebuilt before the answer. openssl checks the result.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Crls } from '../provisioning/crl.js';
import { CaKeyring, DEFAULT_CA_ID } from '../provisioning/pki/keyring.js';
import { systemClock } from '../registry/clock.js';
import { InProcessEventBus } from '../registry/events.js';
import type { DeviceId, Fingerprint, SerialHex } from '../registry/ids.js';
import type { CertificateRecord } from '../registry/model.js';
import { Registry } from '../registry/registry.js';
import { openSqliteStore } from '../registry/sqlite.js';
import { dataLayout, initDataDir, recordInitialState } from './data-dir.js';

export interface CrlFigures {
  entries: number;
  /** Building and signing the DER alone, median of three. */
  signMs: number;
  derBytes: number;
  /** From the registry to the CRL in place: query, DER, signature, PEM file. */
  rebuildMs: number;
  /** A revocation request until it is acknowledged, the CRL rebuilt on the way. */
  revocationAckMs: number;
  opensslVerified: boolean;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function crlBench(entries: number, say: (s: string) => void): Promise<CrlFigures> {
  const dir = await mkdtemp(join(tmpdir(), 'fleet-crl-'));
  try {
    const clock = systemClock;
    const layout = dataLayout(dir);
    await initDataDir(dir, clock);
    const store = await openSqliteStore(layout.registry);
    const bus = new InProcessEventBus();
    const registry = new Registry({ store, bus, clock });
    await recordInitialState(registry, layout, clock);
    const keyring = await CaKeyring.load(layout.pki, await registry.authorities.list());
    const actor = { kind: 'operator', id: 'bench' } as const;

    say(`recording ${entries} revoked certificates`);
    const deviceId = 'crl-bench' as DeviceId;
    await registry.lifecycle.createDevice({ id: deviceId }, actor);
    const now = Date.now();
    for (let done = 0; done < entries; done += 5000) {
      const rows: CertificateRecord[] = [];
      for (let i = done; i < Math.min(entries, done + 5000); i++) {
        const serial = randomBytes(16).toString('hex') as SerialHex;
        rows.push({
          serial,
          fingerprint: createHash('sha256').update(serial).digest('hex') as Fingerprint,
          publicKeySha256: serial,
          deviceId,
          caId: DEFAULT_CA_ID,
          notBefore: new Date(now - 86_400_000),
          notAfter: new Date(now + 30 * 86_400_000),
          status: 'REVOKED',
          pem: '',
          createdAt: new Date(now),
          revokedAt: new Date(now - i),
          revocationReason: i % 2 ? 'keyCompromise' : undefined,
        });
      }
      await store.certificates.insertMany(rows);
    }

    const signer = keyring.get(DEFAULT_CA_ID)!;
    const list = await registry.authorities.crlEntries(DEFAULT_CA_ID);
    const signs: number[] = [];
    let der: Buffer = Buffer.alloc(0);
    for (let round = 0; round < 3; round++) {
      const started = performance.now();
      der = signer.signCrl(
        list.map((e) => ({ serial: e.serial, revokedAt: e.revokedAt, reason: e.revocationReason ? 1 : undefined })),
        { thisUpdate: new Date(), nextUpdate: new Date(Date.now() + 86_400_000), crlNumber: BigInt(Date.now()) },
      );
      signs.push(performance.now() - started);
    }

    const log = pino({ level: 'warn' }, new Writable({ write: (_c, _e, done) => done() }));
    const crls = new Crls(keyring, (id) => registry.authorities.crlEntries(id), async (id) => (await registry.authorities.get(id)).parentId, clock, log);
    const rebuildStarted = performance.now();
    await crls.start([DEFAULT_CA_ID]);
    const rebuildMs = performance.now() - rebuildStarted;
    bus.subscribe((event) => crls.apply(event));

    const victim = (await registry.lifecycle.recordCertificate({ serial: randomBytes(16).toString('hex') as SerialHex, fingerprint: randomBytes(32).toString('hex') as Fingerprint, publicKeySha256: 'victim', deviceId, caId: DEFAULT_CA_ID, notBefore: new Date(now), notAfter: new Date(now + 86_400_000), pem: '' }, actor)).serial;
    const revokeStarted = performance.now();
    await registry.lifecycle.setCertificateStatus(victim, 'REVOKED', actor);
    const revocationAckMs = performance.now() - revokeStarted;
    crls.stop();
    await store.close();

    const verified = execFileSync('sh', ['-c', `openssl crl -in ${layout.pki.crl} -CAfile ${layout.pki.caBundle} -noout 2>&1`], { encoding: 'utf8' });
    return { entries: list.length, signMs: median(signs), derBytes: der.length, rebuildMs, revocationAckMs, opensslVerified: /verify OK/.test(verified) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
