// Creating a factory station: a fresh P-256 key, a client certificate from the first issuing
// CA, and the station's record with its roles. The key is handed to the caller (the CLI
// writes it 0600 beside the certificate) and never kept here.
import { generateKeyPairSync } from 'node:crypto';
import type { Clock } from '../registry/clock.js';
import type { Actor, Station } from '../registry/model.js';
import type { Registry } from '../registry/registry.js';
import { checkStationRoles } from '../registry/stations.js';
import { validity } from './pki/hierarchy.js';
import { DEFAULT_CA_ID, type CaKeyring } from './pki/keyring.js';
import { x509 } from './pki/x509.js';
import { crlPath } from './service.js';

const DAY_MS = 24 * 60 * 60 * 1000;
export const STATION_LIFETIME_MS = 365 * DAY_MS;

export interface NewStation {
  station: Station;
  keyPem: string;
  certificatePem: string;
}

export async function createStation(
  input: { name: string; roles: string[]; lifetimeMs?: number; publicUrl: string },
  deps: { registry: Registry; keyring: CaKeyring; clock: Clock },
  actor: Actor,
): Promise<NewStation> {
  // Refused before any key is made or anything signed.
  checkStationRoles(input.roles);
  const signer = deps.keyring.get(DEFAULT_CA_ID);
  if (!signer) throw new Error(`no signer for CA ${DEFAULT_CA_ID} in this data directory`);
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const issued = await signer.issueStation(input.name, new x509.PublicKey(spki), validity(deps.clock, input.lifetimeMs ?? STATION_LIFETIME_MS), `${input.publicUrl}${crlPath(DEFAULT_CA_ID)}`);
  const station = await deps.registry.stations.record(
    {
      name: input.name,
      roles: input.roles,
      serial: issued.serial,
      fingerprint: issued.fingerprint,
      caId: DEFAULT_CA_ID,
      notBefore: issued.notBefore,
      notAfter: issued.notAfter,
      pem: issued.pem,
    },
    actor,
  );
  return { station, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), certificatePem: issued.pem };
}
