// The CRL written as DER by hand, read back by @peculiar/x509 and by openssl; and its file,
// which two writers at once never leave half written.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CrlPublisher, crlToPem } from '../../provisioning/crl.js';
import type { SerialHex } from '../../registry/ids.js';
import { time } from '../../provisioning/pki/der.js';
import { x509 } from '../../provisioning/pki/x509.js';
import { operatorCa } from '../support/fixtures.js';

const work = mkdtempSync(join(tmpdir(), 'crl-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

describe('CRL DER', () => {
  it('writes a CRL that verifies, with entries, reasons, number and authority key id', async () => {
    const ca = await operatorCa('CRL Test CA');
    const thisUpdate = new Date('2026-11-23T10:00:00Z');
    const der = ca.signCrl(
      [
        { serial: '0a0b0c', revokedAt: new Date('2026-11-01T00:00:00Z'), reason: 1 },
        { serial: '80ff', revokedAt: new Date('2026-11-02T00:00:00Z') },
        { serial: '00000123', revokedAt: new Date('2026-11-03T00:00:00Z'), reason: 0 },
      ],
      { thisUpdate, nextUpdate: new Date('2026-11-30T10:00:00Z'), crlNumber: 1795454733946n },
    );
    const crl = new x509.X509Crl(der);
    assert.equal(await crl.verify({ publicKey: ca.certificate }), true);
    assert.equal(crl.issuer, ca.certificate.subject);
    assert.deepEqual([crl.thisUpdate.toISOString(), crl.nextUpdate?.toISOString()], ['2026-11-23T10:00:00.000Z', '2026-11-30T10:00:00.000Z']);
    assert.deepEqual(
      crl.entries.map((e) => [e.serialNumber.toLowerCase(), e.revocationDate.toISOString().slice(0, 10), e.reason]),
      [
        ['0a0b0c', '2026-11-01', x509.X509CrlReason.keyCompromise],
        ['80ff', '2026-11-02', undefined], // written as 00 80 ff: positive; read back without the pad
        ['0123', '2026-11-03', undefined],
      ],
    );
    assert.equal(crl.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId, ca.keyId);

    const pem = join(work, 'crl.pem');
    writeFileSync(pem, crlToPem(der));
    writeFileSync(join(work, 'ca.pem'), ca.pem);
    const text = execFileSync('sh', ['-c', `openssl crl -in ${pem} -CAfile ${join(work, 'ca.pem')} -noout -text 2>&1`], { encoding: 'utf8' });
    assert.match(text, /verify OK/);
    assert.match(text, /CRL Number:\s+1795454733946/);
  });

  it('writes an empty CRL without a revokedCertificates field', async () => {
    const ca = await operatorCa('Empty CRL CA');
    const crl = new x509.X509Crl(ca.signCrl([], { thisUpdate: new Date(), nextUpdate: new Date(Date.now() + 86_400_000), crlNumber: 1n }));
    assert.equal(await crl.verify({ publicKey: ca.certificate }), true);
    assert.deepEqual(crl.entries, []);
  });

  it('writes a CRL of 100,000 entries that openssl verifies (its list is never spread into arguments)', async () => {
    const ca = await operatorCa('Big CRL CA');
    const entries = Array.from({ length: 100_000 }, (_, i) => ({ serial: (0x10000000 + i).toString(16), revokedAt: new Date('2026-11-01T00:00:00Z'), reason: i % 2 ? 1 : undefined }));
    const der = ca.signCrl(entries, { thisUpdate: new Date(), nextUpdate: new Date(Date.now() + 86_400_000), crlNumber: 7n });
    const pem = join(work, 'big.pem');
    writeFileSync(pem, crlToPem(der));
    writeFileSync(join(work, 'big-ca.pem'), ca.pem);
    const out = execFileSync('sh', ['-c', `openssl crl -in ${pem} -CAfile ${join(work, 'big-ca.pem')} -noout -crlnumber 2>&1`], { encoding: 'utf8' });
    assert.match(out, /verify OK/);
    assert.match(out, /crlNumber=0x07/);
  });

  it('writes times as UTCTime through 2049 and GeneralizedTime from 2050 (RFC 5280 §5.1.2.4)', () => {
    assert.equal(time(new Date('2049-12-31T23:59:59Z')).toString('latin1').slice(2), '491231235959Z');
    assert.equal(time(new Date('2049-12-31T23:59:59Z'))[0], 0x17);
    assert.equal(time(new Date('2050-01-01T00:00:00Z')).toString('latin1').slice(2), '20500101000000Z');
    assert.equal(time(new Date('2050-01-01T00:00:00Z'))[0], 0x18);
  });
});

describe('CRL file', () => {
  it('is replaced whole: two writers at once (two processes of one installation) never interleave, and a reader never sees half a file', async () => {
    const ca = await operatorCa('CRL File CA');
    const path = join(work, 'shared.crl.pem');
    const entries = (count: number) => () => Promise.resolve(Array.from({ length: count }, (_, i) => ({ serial: (i + 1).toString(16) as SerialHex, revokedAt: new Date('2026-11-01T00:00:00Z') })));
    // Different sizes, so a file mixed from both, or cut short, does not parse or verify.
    const writers = [new CrlPublisher(ca, entries(3000), () => new Date(), { path, validityMs: 86_400_000 }), new CrlPublisher(ca, entries(7), () => new Date(), { path, validityMs: 86_400_000 })];
    await writers[0]!.refresh();
    let writing = true;
    const reads: string[] = [];
    const reader = (async () => {
      while (writing) {
        reads.push(readFileSync(path, 'utf8'));
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    await Promise.all(writers.map(async (writer) => {
      for (let i = 0; i < 30; i++) await writer.refresh();
    }));
    writing = false;
    await reader;
    reads.push(readFileSync(path, 'utf8'));
    for (const pem of new Set(reads)) {
      const crl = new x509.X509Crl(pem);
      assert.ok([3000, 7].includes(crl.entries.length), `${crl.entries.length} entries`);
      assert.equal(await crl.verify({ publicKey: ca.certificate }), true);
    }
    assert.deepEqual(readdirSync(work).filter((f) => f.startsWith('shared.crl.pem') && f !== 'shared.crl.pem'), [], 'no temporary file left behind');
  });
});
