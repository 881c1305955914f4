// The data directory: the PKI and the operator token of one installation, and the registry
// file when the registry is SQLite. `fleet init` creates it once, atomically (built beside
// it, then renamed into place), and never overwrites it.
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { createPki, pkiPaths, type PkiPaths } from '../provisioning/pki/hierarchy.js';
import { DEFAULT_CA_ID, ROOT_CA_ID } from '../provisioning/pki/keyring.js';
import { readSecretFile, writeSecretFile } from '../provisioning/pki/keys.js';
import { keyIdOf } from '../provisioning/pki/signer.js';
import { x509 } from '../provisioning/pki/x509.js';
import type { Clock } from '../registry/clock.js';
import type { SerialHex } from '../registry/ids.js';
import type { CaRecord } from '../registry/model.js';
import type { Registry } from '../registry/registry.js';

export interface DataLayout {
  dir: string;
  pki: PkiPaths;
  registry: string;
  adminToken: string;
}

export function dataLayout(dir: string): DataLayout {
  const root = resolve(dir);
  return { dir: root, pki: pkiPaths(join(root, 'pki')), registry: join(root, 'registry.db'), adminToken: join(root, 'admin.token') };
}

export function isInitialized(layout: DataLayout): boolean {
  return existsSync(layout.pki.rootCert);
}

export class DataDirError extends Error {
  override readonly name = 'DataDirError';
}

/**
 * Creates the data directory's PKI and token unless it is already initialized (`pki` sets the
 * first issuing CA's lifetime, five years by default). Returns whether it created them. A directory that exists, is not empty and is not a data directory
 * is left alone.
 */
export async function initDataDir(dir: string, clock: Clock, pki: { issuingLifetimeMs?: number } = {}): Promise<boolean> {
  const layout = dataLayout(dir);
  if (isInitialized(layout)) return false;
  const existing = await fs.readdir(layout.dir).catch(() => undefined);
  if (existing && existing.length > 0) {
    throw new DataDirError(`${layout.dir} exists, is not empty, and holds no fleet data (no pki/root.pem); refusing to touch it`);
  }
  await fs.mkdir(dirname(layout.dir), { recursive: true });
  const staging = join(dirname(layout.dir), `.${basename(layout.dir)}.init-${randomBytes(4).toString('hex')}`);
  await fs.mkdir(staging, { mode: 0o700 });
  try {
    const building = dataLayout(staging);
    await createPki(building.pki, clock, pki);
    await writeSecretFile(building.adminToken, `${randomBytes(32).toString('base64url')}\n`);
    if (existing) await fs.rmdir(layout.dir);
    await fs.rename(staging, layout.dir);
  } catch (error) {
    await fs.rm(staging, { recursive: true, force: true });
    throw error;
  }
  return true;
}

async function caRecord(id: string, certPath: string, clock: Clock, parentId?: string): Promise<CaRecord> {
  const pem = await fs.readFile(certPath, 'utf8');
  const cert = new x509.X509Certificate(pem);
  return {
    id,
    name: id,
    parentId,
    subject: cert.subject,
    serial: cert.serialNumber.toLowerCase() as SerialHex,
    keyId: await keyIdOf(cert),
    pem,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    status: 'ACTIVE',
    external: false,
    createdAt: clock(),
  };
}

/**
 * Makes sure the registry knows the root and first issuing CA of this data directory and its
 * operator `admin` (the token in admin.token), and refuses a registry that belongs to another
 * PKI (a shared database pointed at the wrong directory would otherwise mix two fleets).
 */
export async function recordInitialState(registry: Registry, layout: DataLayout, clock: Clock): Promise<void> {
  const system = { kind: 'system', id: 'init' } as const;
  const root = await caRecord(ROOT_CA_ID, layout.pki.rootCert, clock);
  const existing = (await registry.authorities.list()).find((c) => c.id === ROOT_CA_ID);
  if (existing && existing.keyId !== root.keyId) {
    throw new DataDirError(`the registry belongs to another PKI: its root CA is ${existing.subject}, this data directory's is ${root.subject}`);
  }
  if (!existing) {
    await registry.authorities.record(root, system);
    await registry.authorities.record(await caRecord(DEFAULT_CA_ID, layout.pki.issuingCert, clock, ROOT_CA_ID), system);
  }
  if (!(await registry.operators.list()).some((o) => o.name === ADMIN_OPERATOR)) {
    await registry.operators.record(ADMIN_OPERATOR, ['admin'], await readAdminToken(layout), system);
  }
}

export const ADMIN_OPERATOR = 'admin';

export async function readAdminToken(layout: DataLayout): Promise<string> {
  return (await readSecretFile(layout.adminToken)).trim();
}
