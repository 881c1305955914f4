// What clients trust, derived from the registry's CAs and rewritten whenever a CA is
// created, registered or revoked:
// - the CA bundle (pki/ca-bundle.pem, GET /v1/ca/bundle): this service's active CAs, root
//   first — what devices use to check the broker and what factories use to check the API;
// - the broker's client trust: the same plus operators' own CAs and their chains. Revoked
//   CAs stay in it on purpose, so their devices are refused with the registry's precise
//   reason (certificate_revoked) rather than as an unknown issuer. Retired issuing CAs leave
//   both: rotation retires a CA only once nothing active depends on it.
import { X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { CaRecord } from '../registry/model.js';
import { coalesced } from './coalesce.js';

export interface TrustBundles {
  caBundlePem: string;
  clientTrustPem: string;
}

/** Parents before children: the root first, as the contract's bundle has always had it. */
function parentsFirst(list: readonly CaRecord[]): CaRecord[] {
  const byId = new Map(list.map((c) => [c.id, c]));
  const depth = (c: CaRecord) => {
    let d = 0;
    for (let id = c.parentId; id !== undefined; id = byId.get(id)?.parentId) d++;
    return d;
  };
  return [...list].sort((a, b) => depth(a) - depth(b));
}

const concatenated = (list: readonly CaRecord[]) => list.map((c) => c.pem.trim()).join('\n') + '\n';

/** `extraPem`: CAs an operator placed in pki/trust.d/ for the broker to trust as well. */
export function trustBundles(cas: readonly CaRecord[], extraPem = ''): TrustBundles {
  const ours = parentsFirst(cas.filter((c) => !c.external));
  return {
    caBundlePem: concatenated(ours.filter((c) => c.status === 'ACTIVE')),
    clientTrustPem: concatenated([...ours.filter((c) => c.status !== 'RETIRED'), ...cas.filter((c) => c.external)]) + extraPem,
  };
}

/**
 * The certificates in a directory's .pem files (none if it does not exist), checked one by
 * one: Node would silently ignore a broken one in a trust bundle, so it is reported instead.
 */
export async function pemDirectory(dir: string, ignored: (file: string, problem: string) => void = () => undefined): Promise<string> {
  const names = (await fs.readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.pem')).sort();
  const pems: string[] = [];
  for (const name of names) {
    const blocks = (await fs.readFile(`${dir}/${name}`, 'utf8')).match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    if (blocks.length === 0) ignored(name, 'no certificate in it');
    for (const block of blocks) {
      try {
        new X509Certificate(block);
        pems.push(block + '\n');
      } catch (error) {
        ignored(name, (error as Error).message);
      }
    }
  }
  return pems.join('');
}

/** Writes the CA bundle file atomically, so a reader never sees half of it. */
async function writeCaBundle(path: string, pem: string): Promise<void> {
  const tmp = `${path}.tmp`;
  await fs.writeFile(tmp, pem, { mode: 0o644 });
  await fs.rename(tmp, path);
}

/**
 * The current bundles, rebuilt from the registry's CAs (one rebuild at a time), written to
 * the CA bundle file and handed to whoever applies them (the broker's TLS listener).
 */
export class Trust {
  #current: TrustBundles;
  readonly #listeners: ((bundles: TrustBundles) => void)[] = [];
  /** Rebuilds from the registry; resolves once the file is written and listeners told. */
  readonly refresh: () => Promise<void>;

  private constructor(cas: () => Promise<CaRecord[]>, extra: () => Promise<string>, caBundlePath: string, initial: TrustBundles) {
    this.#current = initial;
    this.refresh = coalesced(async () => {
      this.#current = trustBundles(await cas(), await extra());
      await writeCaBundle(caBundlePath, this.#current.caBundlePem);
      for (const listener of this.#listeners) listener(this.#current);
    });
  }

  static async load(cas: () => Promise<CaRecord[]>, extra: () => Promise<string>, caBundlePath: string): Promise<Trust> {
    const bundles = trustBundles(await cas(), await extra());
    await writeCaBundle(caBundlePath, bundles.caBundlePem);
    return new Trust(cas, extra, caBundlePath, bundles);
  }

  get bundles(): TrustBundles {
    return this.#current;
  }

  onChange(listener: (bundles: TrustBundles) => void): void {
    this.#listeners.push(listener);
  }
}
