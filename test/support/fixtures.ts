// Certificates named after the failure they cause, built per run against the test fleet's
// own CAs (or a stranger's), so validity follows the clock of the test.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair, importPrivateKey } from '../../provisioning/pki/keys.js';
import { openSqliteStore } from '../../registry/sqlite.js';
import { rootCaExtensions } from '../../provisioning/pki/profiles.js';
import { CaSigner, keyIdOf } from '../../provisioning/pki/signer.js';
import { x509 } from '../../provisioning/pki/x509.js';
import type { ClaimBatchIdentity } from './claims.js';
import type { TestFleet } from './fleet.js';
import { ecKeyWithCsr } from './keys.js';
import type { Identity } from './mqtt.js';

const DAY = 24 * 60 * 60 * 1000;
const CRL_URL = 'https://localhost/v1/crl';

async function deviceKey() {
  const key = await ecKeyWithCsr();
  const publicKey = await x509.PublicKey.create(key.keys.publicKey);
  return { keyPem: key.keyPem, publicKey, spki: Buffer.from(publicKey.rawData) };
}

/** Signed by the fleet's real issuing CA, but never recorded in the registry. */
export async function unregisteredDevice(fleet: TestFleet, id: string): Promise<Identity> {
  const ca = await fleet.issuingCa();
  const key = await deviceKey();
  const cert = ca.issueDevice(id, key.spki, { notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY) }, CRL_URL);
  return { id, keyPem: key.keyPem, certPem: cert.pem };
}

/** A claim certificate for a batch the registry never heard of, signed by the fleet's issuing CA. */
export async function unregisteredClaim(fleet: TestFleet, batch: string): Promise<ClaimBatchIdentity> {
  const ca = await fleet.issuingCa();
  const key = await deviceKey();
  const cert = await ca.issueClaim(batch, key.publicKey, { notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY) }, CRL_URL);
  return { batch, keyPem: key.keyPem, certPem: cert.pem };
}

export async function expiredDevice(fleet: TestFleet, id: string): Promise<Identity> {
  const ca = await fleet.issuingCa();
  const key = await deviceKey();
  const cert = ca.issueDevice(id, key.spki, { notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY) }, CRL_URL);
  return { id, keyPem: key.keyPem, certPem: cert.pem };
}

export async function notYetValidDevice(fleet: TestFleet, id: string): Promise<Identity> {
  const ca = await fleet.issuingCa();
  const key = await deviceKey();
  const cert = ca.issueDevice(id, key.spki, { notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 10 * DAY) }, CRL_URL);
  return { id, keyPem: key.keyPem, certPem: cert.pem };
}

/** A server certificate (serverAuth only) presented as a client certificate. */
export async function serverCertAsClient(fleet: TestFleet, id: string): Promise<Identity> {
  const ca = await fleet.issuingCa();
  const key = await deviceKey();
  const cert = await ca.issueServer(id, { dns: ['localhost'], ips: [] }, key.publicKey, { notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY) });
  return { id, keyPem: key.keyPem, certPem: cert.pem };
}

/** A well-formed device certificate from a CA this fleet has never heard of. */
export async function foreignCaDevice(id: string): Promise<Identity> {
  return deviceSignedBy(await operatorCa('Somebody Else Root CA'), id);
}

/**
 * An operator's own CA (a self-signed root here), outside this service. Valid from a day ago
 * for a year, unless a test that checks certificates at a fixed time gives it fixed dates.
 */
export async function operatorCa(name: string, validity: { notBefore: Date; notAfter: Date } = { notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + 365 * DAY) }): Promise<CaSigner> {
  const keys = await generateKeyPair();
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${name}`,
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    ...validity,
    extensions: rootCaExtensions({ subject: await keyIdOf(await x509.PublicKey.create(keys.publicKey)) }),
  });
  return CaSigner.create(root, keys.privateKey);
}

/** A device certificate (CN = id) signed by the given CA. */
export async function deviceSignedBy(ca: CaSigner, id: string): Promise<Identity & { serial: string; fingerprint: string }> {
  const key = await deviceKey();
  const cert = ca.issueDevice(id, key.spki, { notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY) }, CRL_URL);
  return { id, keyPem: key.keyPem, certPem: cert.pem, serial: cert.serial, fingerprint: cert.fingerprint };
}

/** A device certificate from the fleet's CA whose signature no longer matches its content. */
export async function corruptedSignatureDevice(fleet: TestFleet, id: string): Promise<Identity> {
  const ca = await fleet.issuingCa();
  const key = await deviceKey();
  const cert = ca.issueDevice(id, key.spki, { notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY) }, CRL_URL);
  const der = Buffer.from(cert.der);
  der[der.length - 5] = der[der.length - 5]! ^ 0xff; // inside the signature BIT STRING
  return { id, keyPem: key.keyPem, certPem: `-----BEGIN CERTIFICATE-----\n${der.toString('base64')}\n-----END CERTIFICATE-----\n` };
}

/** The fleet's root CA, with its key, as the test's own signer. */
export async function rootCa(fleet: TestFleet): Promise<CaSigner> {
  return CaSigner.create(new x509.X509Certificate(await readFile(join(fleet.dir, 'pki', 'root.pem'), 'utf8')), await importPrivateKey(await readFile(join(fleet.dir, 'pki', 'root.key'), 'utf8')));
}

/**
 * A certificate the registry holds for an existing device but whose validity has passed, as
 * a device that was offline too long would present: issued here, recorded as it was then.
 */
export async function expiredButRegistered(fleet: TestFleet, deviceId: string): Promise<Identity & { serial: string; fingerprint: string }> {
  const ca = await fleet.issuingCa();
  const key = await deviceKey();
  const cert = ca.issueDevice(deviceId, key.spki, { notBefore: new Date(Date.now() - 40 * DAY), notAfter: new Date(Date.now() - DAY) }, CRL_URL);
  const store = await openSqliteStore(join(fleet.dir, 'registry.db'));
  await store.certificates.insert({
    serial: cert.serial,
    fingerprint: cert.fingerprint,
    publicKeySha256: createHash('sha256').update(key.spki).digest('hex'),
    deviceId: deviceId as never,
    caId: 'default',
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    status: 'ACTIVE',
    pem: cert.pem,
    createdAt: cert.notBefore,
  });
  await store.close();
  return { id: deviceId, keyPem: key.keyPem, certPem: cert.pem, serial: cert.serial, fingerprint: cert.fingerprint };
}
