import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { checkCsr, CsrError } from '../../provisioning/pki/csr.js';
import { children, readTlv } from '../../registry/der-reader.js';
import { oid, sequence, tlv } from '../../provisioning/pki/der.js';
import { ecKeyWithCsr, rsaKeyWithCsr } from '../support/keys.js';

const work = mkdtempSync(join(tmpdir(), 'csr-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** A CSR made by openssl, as a factory script would make it. */
function opensslCsr(keyArgs: string[], digest?: string): string {
  const key = join(work, `k-${Math.random()}.pem`);
  execFileSync('openssl', ['genpkey', ...keyArgs, '-out', key], { stdio: 'ignore' });
  const csr = join(work, `r-${Math.random()}.pem`);
  execFileSync('openssl', ['req', '-new', '-key', key, ...(digest ? [digest] : []), '-subj', '/CN=factory', '-out', csr], { stdio: 'ignore' });
  return readFileSync(csr, 'utf8');
}

const derOfPem = (pem: string) => Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
const requestPem = (der: Buffer) => `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;

/** The request's three fields, DER: certificationRequestInfo, signatureAlgorithm, signature. */
function fieldsOf(pem: string): Buffer[] {
  const der = derOfPem(pem);
  return children(der, readTlv(der, 0)).map((t) => der.subarray(t.offset, t.end));
}

function codeOf(pem: string): string {
  try {
    checkCsr(pem);
    return 'accepted';
  } catch (error) {
    assert.ok(error instanceof CsrError, String(error));
    return error.code;
  }
}

describe('checkCsr', () => {
  it('accepts EC P-256 and reports the key hash', async () => {
    const checked = checkCsr((await ecKeyWithCsr()).csrPem);
    assert.equal(checked.keyDescription, 'EC P-256');
    assert.match(checked.publicKeySha256, /^[0-9a-f]{64}$/);
  });

  it('accepts EC P-384 and RSA 2048 from openssl', () => {
    assert.equal((checkCsr(opensslCsr(['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384']))).keyDescription, 'EC P-384');
    assert.equal((checkCsr(opensslCsr(['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']))).keyDescription, 'RSA 2048');
  });

  const refused: [string, () => Promise<string> | string, string][] = [
    ['an empty string', () => '', 'csr_malformed'],
    ['a certificate instead of a request', () => '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', 'csr_malformed'],
    ['garbage inside the PEM armour', () => '-----BEGIN CERTIFICATE REQUEST-----\nAAAAAAAA\n-----END CERTIFICATE REQUEST-----\n', 'csr_malformed'],
    ['two requests at once', async () => (await ecKeyWithCsr()).csrPem + (await ecKeyWithCsr()).csrPem, 'csr_malformed'],
    ['RSA 1024', async () => (await rsaKeyWithCsr(1024)).csrPem, 'csr_key_unsupported'],
    ['EC P-521', () => opensslCsr(['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-521']), 'csr_key_unsupported'],
    ['secp256k1', () => opensslCsr(['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:secp256k1']), 'csr_key_unsupported'],
    ['Ed25519', () => opensslCsr(['-algorithm', 'ED25519']), 'csr_key_unsupported'],
    ['an RSA request signed with SHA-1', () => opensslCsr(['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'], '-sha1'), 'csr_signature_invalid'],
  ];
  for (const [name, make, code] of refused) {
    it(`refuses ${name} with ${code}`, async () => assert.equal(codeOf(await make()), code));
  }

  it('refuses bytes after the request with csr_malformed', async () => {
    const der = derOfPem((await ecKeyWithCsr()).csrPem);
    assert.equal(codeOf(requestPem(der)), 'accepted');
    assert.equal(codeOf(requestPem(Buffer.concat([der, Buffer.from([0x05, 0x00])]))), 'csr_malformed');
  });

  it('refuses a truncated request and a request with a fourth field with csr_malformed', async () => {
    const der = derOfPem((await ecKeyWithCsr()).csrPem);
    assert.equal(codeOf(requestPem(der.subarray(0, der.length - 1))), 'csr_malformed');
    assert.equal(codeOf(requestPem(sequence(...fieldsOf((await ecKeyWithCsr()).csrPem), tlv(0x05, Buffer.alloc(0))))), 'csr_malformed');
  });

  it('refuses an EC key whose request claims an RSA signature with csr_signature_invalid', async () => {
    const [info, , signature] = fieldsOf((await ecKeyWithCsr()).csrPem);
    const sha256WithRsa = sequence(oid('1.2.840.113549.1.1.11'), tlv(0x05, Buffer.alloc(0)));
    assert.equal(codeOf(requestPem(sequence(info!, sha256WithRsa, signature!))), 'csr_signature_invalid');
  });

  it('refuses a signature made by another key with csr_signature_invalid', async () => {
    const [info, algorithm] = fieldsOf((await ecKeyWithCsr()).csrPem);
    const [, , otherSignature] = fieldsOf((await ecKeyWithCsr()).csrPem);
    assert.equal(codeOf(requestPem(sequence(info!, algorithm!, otherSignature!))), 'csr_signature_invalid');
  });

  it('refuses a P-256 key whose point is off the curve with csr_key_unsupported', async () => {
    const der = derOfPem((await ecKeyWithCsr()).csrPem);
    // The curve's OID, the BIT STRING's header and the uncompressed point's 0x04, then x and y.
    const point = der.indexOf(Buffer.from('06082a8648ce3d030107034200' + '04', 'hex')) + 13;
    der[point + 64]! ^= 1; // the last byte of y
    assert.equal(codeOf(requestPem(der)), 'csr_key_unsupported');
  });

  it('refuses a request whose signature does not match its content', async () => {
    const pem = (await ecKeyWithCsr('original')).csrPem;
    const der = derOfPem(pem);
    // Flip a byte of the subject CN ("original" → "originam"): the signature no longer covers it.
    const at = der.indexOf(Buffer.from('original'));
    der[at + 7] = 'm'.charCodeAt(0);
    assert.equal(codeOf(requestPem(der)), 'csr_signature_invalid');
  });
});
