// Every CA this service signs with, by registry id. The root and the first issuing CA live
// where `fleet init` put them; CAs created later live in pki/cas/. A CA whose key is not on
// this machine (an operator's own CA, say) has no signer here.
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../../registry/clock.js';
import type { CaRecord } from '../../registry/model.js';
import { ISSUING_LIFETIME_MS, importSigner, validity, writePair, type PkiPaths } from './hierarchy.js';
import { generateKeyPair, readSecretFile } from './keys.js';
import type { CaSigner } from './signer.js';
import { x509 } from './x509.js';

export const ROOT_CA_ID = 'root';
export const DEFAULT_CA_ID = 'default';

function filesOf(paths: PkiPaths, id: string): { cert: string; key: string } {
  if (id === ROOT_CA_ID) return { cert: paths.rootCert, key: paths.rootKey };
  if (id === DEFAULT_CA_ID) return { cert: paths.issuingCert, key: paths.issuingKey };
  return { cert: join(paths.casDir, `${id}.pem`), key: join(paths.casDir, `${id}.key`) };
}

export class CaKeyring {
  readonly #signers = new Map<string, CaSigner>();

  private constructor(private readonly paths: PkiPaths) {}

  static async load(paths: PkiPaths, cas: readonly CaRecord[]): Promise<CaKeyring> {
    const ring = new CaKeyring(paths);
    for (const ca of cas) await ring.adopt(ca);
    return ring;
  }

  /**
   * Takes up a CA whose key is in this data directory but not in this keyring yet (one another
   * process of the same installation created). A CA whose key is elsewhere stays unsignable here.
   */
  async adopt(ca: CaRecord): Promise<void> {
    if (ca.external || this.#signers.has(ca.id)) return;
    const files = filesOf(this.paths, ca.id);
    const keyPem = await readSecretFile(files.key).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined; // recorded elsewhere; not signable here
      throw error;
    });
    if (keyPem) this.#signers.set(ca.id, await importSigner(await fs.readFile(files.cert, 'utf8'), keyPem));
  }

  get(id: string): CaSigner | undefined {
    return this.#signers.get(id);
  }

  /** Forgets a CA created here whose record could not be written, and deletes its files. */
  async discard(id: string): Promise<void> {
    this.#signers.delete(id);
    const files = filesOf(this.paths, id);
    await Promise.all([fs.rm(files.cert, { force: true }), fs.rm(files.key, { force: true })]);
  }

  /** Where a CA's CRL is kept on disk. */
  crlPath(id: string): string {
    if (id === DEFAULT_CA_ID) return this.paths.crl;
    if (id === ROOT_CA_ID) return join(this.paths.dir, 'root.crl.pem');
    return join(this.paths.casDir, `${id}.crl.pem`);
  }

  /**
   * Creates a CA signed by `parent`: a new P-256 key written 0600 beside its certificate.
   * Returns the record for the registry; the caller records it. By default the CA lives five
   * years (never past its parent), is named after `name`, and may have one level fewer of CAs
   * below it than its parent.
   */
  async create(
    input: { id: string; name: string; parentId: string; crlUrl: string; commonName?: string; lifetimeMs?: number; pathLength?: number },
    clock: Clock,
  ): Promise<CaRecord> {
    const parent = this.#signers.get(input.parentId);
    if (!parent) throw new Error(`no signer for CA ${input.parentId}`);
    const keys = await generateKeyPair();
    const issued = await parent.issueIssuingCa(
      [{ CN: [input.commonName ?? `Fleet CA ${input.name}`] }, { O: ['Fleet Identity'] }],
      await x509.PublicKey.create(keys.publicKey),
      validity(clock, Math.min(input.lifetimeMs ?? ISSUING_LIFETIME_MS, parent.certificate.notAfter.getTime() - clock().getTime())),
      // One level fewer than the parent allows; no limit under a parent without one.
      { pathLength: input.pathLength ?? (parent.pathLength === undefined ? undefined : parent.pathLength - 1), crlUrl: input.crlUrl },
    );
    await fs.mkdir(this.paths.casDir, { recursive: true, mode: 0o700 });
    const files = filesOf(this.paths, input.id);
    await writePair(files.cert, files.key, issued.certificate, keys);
    const signer = await importSigner(issued.pem, await readSecretFile(files.key));
    this.#signers.set(input.id, signer);
    return {
      id: input.id,
      name: input.name,
      parentId: input.parentId,
      subject: issued.certificate.subject,
      serial: issued.serial,
      keyId: signer.keyId,
      pem: issued.pem,
      notBefore: issued.notBefore,
      notAfter: issued.notAfter,
      status: 'ACTIVE',
      external: false,
      createdAt: clock(),
    };
  }
}
