// The CA hierarchy on disk: root → issuing CA, plus the TLS server certificate of the
// broker and API. Created once (fleet init); afterwards only loaded, and the server
// certificate renewed when it nears expiry.
import { promises as fs } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Clock } from '../../registry/clock.js';
import { generateKeyPair, importPrivateKey, privateKeyToPem, readSecretFile, writeSecretFile } from './keys.js';
import { rootCaExtensions } from './profiles.js';
import { randomSerial } from './serial.js';
import { CaSigner, keyIdOf, type Validity } from './signer.js';
import { x509, type CryptoKeyPair } from './x509.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const ROOT_LIFETIME_MS = 10 * 365 * DAY_MS;
export const ISSUING_LIFETIME_MS = 5 * 365 * DAY_MS;
const SERVER_LIFETIME_MS = 397 * DAY_MS;
/** A server certificate closer than this to its notAfter is replaced at start. */
const SERVER_RENEW_BEFORE_MS = 30 * DAY_MS;

export interface PkiPaths {
  dir: string;
  rootCert: string;
  rootKey: string;
  issuingCert: string;
  issuingKey: string;
  caBundle: string;
  serverCert: string;
  serverKey: string;
  crl: string;
  /** Keys and certificates of CAs created after init, as <id>.key and <id>.pem. */
  casDir: string;
}

export function pkiPaths(dir: string): PkiPaths {
  return {
    dir,
    rootCert: join(dir, 'root.pem'),
    rootKey: join(dir, 'root.key'),
    issuingCert: join(dir, 'issuing.pem'),
    issuingKey: join(dir, 'issuing.key'),
    caBundle: join(dir, 'ca-bundle.pem'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
    crl: join(dir, 'crl.pem'),
    casDir: join(dir, 'cas'),
  };
}

/** Names the server certificate covers: what clients on this machine dial. */
export function defaultServerNames(): { dns: string[]; ips: string[] } {
  const dns = ['localhost'];
  const host = hostname();
  if (host && host !== 'localhost') dns.push(host);
  return { dns, ips: ['127.0.0.1', '::1'] };
}

/** Backdated a minute: a peer whose clock runs slightly behind still accepts it at once. */
export const BACKDATE_MS = 60_000;

export function validity(clock: Clock, lifetimeMs: number): Validity {
  const now = clock().getTime();
  return { notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(now + lifetimeMs) };
}

export async function writePair(certPath: string, keyPath: string, certificate: x509.X509Certificate, keys: CryptoKeyPair) {
  await writeSecretFile(keyPath, await privateKeyToPem(keys.privateKey));
  await fs.writeFile(certPath, certificate.toString('pem') + '\n', { flag: 'wx', mode: 0o644 });
}

export async function importSigner(certPem: string, keyPem: string): Promise<CaSigner> {
  return CaSigner.create(new x509.X509Certificate(certPem), await importPrivateKey(keyPem));
}

/** Creates the whole hierarchy in `paths.dir`, which must be empty or absent. */
export async function createPki(paths: PkiPaths, clock: Clock, options: { issuingLifetimeMs?: number } = {}): Promise<void> {
  await fs.mkdir(paths.dir, { recursive: true, mode: 0o700 });
  // A suffix keeps two installations' CA names apart; trust stores match issuers by name.
  const tag = randomBytes(3).toString('hex');

  const rootKeys = await generateKeyPair();
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    name: [{ CN: [`Fleet Dev Root CA ${tag}`] }, { O: ['Fleet Identity'] }],
    keys: rootKeys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    serialNumber: randomSerial(),
    ...validity(clock, ROOT_LIFETIME_MS),
    extensions: rootCaExtensions({ subject: await keyIdOf(await x509.PublicKey.create(rootKeys.publicKey)) }),
  });
  await writePair(paths.rootCert, paths.rootKey, root, rootKeys);
  const rootSigner = await CaSigner.create(root, rootKeys.privateKey);

  const issuingKeys = await generateKeyPair();
  const issuing = await rootSigner.issueIssuingCa(
    [{ CN: [`Fleet Dev Issuing CA 1 ${tag}`] }, { O: ['Fleet Identity'] }],
    await x509.PublicKey.create(issuingKeys.publicKey),
    validity(clock, Math.min(options.issuingLifetimeMs ?? ISSUING_LIFETIME_MS, ROOT_LIFETIME_MS)),
    { pathLength: 0 },
  );
  await writePair(paths.issuingCert, paths.issuingKey, issuing.certificate, issuingKeys);

  await fs.writeFile(paths.caBundle, `${root.toString('pem')}\n${issuing.pem}\n`, { flag: 'wx', mode: 0o644 });
  await issueServerCertificate(paths, await CaSigner.create(issuing.certificate, issuingKeys.privateKey), clock);
}

async function issueServerCertificate(paths: PkiPaths, issuing: CaSigner, clock: Clock): Promise<void> {
  const keys = await generateKeyPair();
  const server = await issuing.issueServer('localhost', defaultServerNames(), await x509.PublicKey.create(keys.publicKey), validity(clock, SERVER_LIFETIME_MS));
  await writePair(paths.serverCert, paths.serverKey, server.certificate, keys);
}

/**
 * Replaces the server key and certificate with new ones from `issuing`. The certificate file
 * then carries the issuing CA after the leaf, so a client that trusts only the root still
 * builds the chain while its bundle lags behind a CA rotation. Written beside the old pair and
 * renamed into place, so a reader sees the old pair or the new one.
 */
export async function reissueServerCertificate(paths: PkiPaths, issuing: CaSigner, clock: Clock): Promise<void> {
  const staging = pkiPaths(await fs.mkdtemp(join(paths.dir, '.server-')));
  try {
    await issueServerCertificate(staging, issuing, clock);
    await fs.appendFile(staging.serverCert, `${issuing.pem.trim()}\n`);
    await fs.rename(staging.serverKey, paths.serverKey);
    await fs.rename(staging.serverCert, paths.serverCert);
  } finally {
    await fs.rm(staging.dir, { recursive: true, force: true });
  }
}

/** Whether the server certificate was issued by `issuing` (its first certificate's issuer is that CA). */
export async function serverIssuedBy(paths: PkiPaths, issuing: CaSigner): Promise<boolean> {
  const server = new x509.X509Certificate(await fs.readFile(paths.serverCert, 'utf8'));
  return server.issuer === issuing.certificate.subject;
}

/**
 * The broker's and API's TLS credentials, replaced first (new key, new certificate from the
 * issuing CA that signs now) when the certificate is about to expire.
 */
export async function loadServerCredentials(paths: PkiPaths, issuing: CaSigner, clock: Clock): Promise<{ certPem: string; keyPem: string }> {
  const current = await fs.readFile(paths.serverCert, 'utf8');
  if (new x509.X509Certificate(current).notAfter.getTime() - clock().getTime() < SERVER_RENEW_BEFORE_MS) await reissueServerCertificate(paths, issuing, clock);
  return { certPem: await fs.readFile(paths.serverCert, 'utf8'), keyPem: await readSecretFile(paths.serverKey) };
}
