// CRLs of operators' own CAs, dropped into pki/crls/ (PEM or DER): each one is checked against
// the CA that signed it, and every certificate it lists is revoked in the registry through
// the normal path — durable, published, sessions closed. The broker itself never loads a CRL
// into TLS: an expired CRL there would refuse every device of that CA (and revocation of
// this service's own certificates is the registry's anyway).
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '../registry/clock.js';
import type { SerialHex } from '../registry/ids.js';
import type { Actor } from '../registry/model.js';
import type { Registry } from '../registry/registry.js';
import { x509 } from './pki/x509.js';

export interface CrlImport {
  files: number;
  /** Serials newly revoked in the registry. */
  revoked: string[];
  /** Files that could not be used, and why. */
  problems: { file: string; problem: string }[];
}

/** Serials listed by operators' CRLs, by CA id: also those the registry has never seen. */
export class CrlRevocations {
  #byCa = new Map<string, Set<string>>();

  replace(byCa: Map<string, Set<string>>): void {
    this.#byCa = byCa;
  }

  has(caId: string, serial: string): boolean {
    return this.#byCa.get(caId)?.has(serial.toLowerCase().replace(/^0+/, '')) ?? false;
  }
}

function parseCrl(content: Buffer): x509.X509Crl {
  const text = content.toString('latin1');
  const pem = /-----BEGIN (X509 )?CRL-----([\s\S]+?)-----END (X509 )?CRL-----/.exec(text);
  return new x509.X509Crl(pem ? Buffer.from(pem[2]!.replace(/\s+/g, ''), 'base64') : content);
}

export async function importCrls(dir: string, registry: Registry, revocations: CrlRevocations, log: Logger, clock: Clock): Promise<CrlImport> {
  const names = (await fs.readdir(dir).catch(() => [] as string[])).filter((n) => /\.(pem|crl|der)$/i.test(n)).sort();
  const external = (await registry.authorities.list()).filter((ca) => ca.external);
  const actor: Actor = { kind: 'system', id: 'crl-import' };
  const result: CrlImport = { files: names.length, revoked: [], problems: [] };
  const listed = new Map<string, Set<string>>();

  for (const file of names) {
    try {
      const crl = parseCrl(await fs.readFile(join(dir, file)));
      let issuer: (typeof external)[number] | undefined;
      for (const ca of external) {
        const caCert = new x509.X509Certificate(ca.pem);
        if (caCert.subject === crl.issuer && (await crl.verify({ publicKey: caCert }))) issuer = ca;
      }
      if (!issuer) throw new Error(`not signed by a registered operator CA (issuer ${crl.issuer})`);
      // An expired CRL still lists revocations: they stay revoked. It is reported, not obeyed by refusing everyone.
      if (crl.nextUpdate && crl.nextUpdate.getTime() < clock().getTime()) result.problems.push({ file, problem: `expired at ${crl.nextUpdate.toISOString()}; its entries were applied` });
      const serials = listed.get(issuer.id) ?? new Set<string>();
      listed.set(issuer.id, serials);
      for (const entry of crl.entries) {
        const serial = entry.serialNumber.toLowerCase().replace(/^0+/, '');
        serials.add(serial);
        const padded = (serial.length % 2 ? `0${serial}` : serial) as SerialHex;
        const known = await registry.lifecycle.certificate(padded);
        if (!known || known.caId !== issuer.id || known.status === 'REVOKED') continue;
        await registry.lifecycle.setCertificateStatus(known.serial, 'REVOKED', actor, 'crl');
        result.revoked.push(known.serial);
      }
    } catch (error) {
      result.problems.push({ file, problem: (error as Error).message });
    }
  }
  revocations.replace(listed);
  log.info({ event: 'crls_imported', ...result }, 'operator CRLs imported');
  return result;
}
