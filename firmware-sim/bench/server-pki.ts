// The server side of the benchmark's PKI: what our service serves (its certificate with its
// intermediates, its key, the fleet's CA bundle), handed to every other server under test so
// that each sends devices the same certificates.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { withIntermediates } from '../../provisioning/pki/served-chain.js';

export interface ServerPki {
  caBundlePem: string;
  serverCertPem: string;
  serverKeyPem: string;
}

/** The PKI a service with this data directory serves; `caBundlePem` as its API hands it out. */
export async function readServerPki(dataDir: string, caBundlePem: string): Promise<ServerPki> {
  const pki = join(dataDir, 'pki');
  return {
    caBundlePem,
    serverCertPem: withIntermediates(await readFile(join(pki, 'server.pem'), 'utf8'), caBundlePem),
    serverKeyPem: await readFile(join(pki, 'server.key'), 'utf8'),
  };
}

/** Writes ca.pem, server.pem and server.key (readable by the owner only) into `dir`. */
export async function writeServerPki(dir: string, pki: ServerPki): Promise<void> {
  await writeFile(join(dir, 'ca.pem'), pki.caBundlePem);
  await writeFile(join(dir, 'server.pem'), pki.serverCertPem);
  await writeFile(join(dir, 'server.key'), pki.serverKeyPem, { mode: 0o600 });
}
