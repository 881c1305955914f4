// Registry records for tests that exercise the registry without a PKI behind it.
import type { SerialHex } from '../../registry/ids.js';
import type { CaRecord } from '../../registry/model.js';

let n = 0;

/** A CA record as the registry keeps it; the PEM is a placeholder, never parsed. */
export function testCa(id: string, parentId?: string, extra: Partial<CaRecord> = {}): CaRecord {
  return {
    id,
    name: id,
    parentId,
    subject: `CN=${id}`,
    serial: (0x20000 + ++n).toString(16) as SerialHex,
    keyId: `key-${id}`,
    pem: `-----BEGIN CERTIFICATE-----\n${id}\n-----END CERTIFICATE-----`,
    notBefore: new Date('2026-01-01'),
    notAfter: new Date('2036-01-01'),
    status: 'ACTIVE',
    external: false,
    createdAt: new Date('2026-01-01'),
    ...extra,
  };
}
