// Which status changes are legal, in one table per kind. A move to the status already held
// is a no-op, not an error; a move out of a terminal status is refused with its code.
import { RegistryError, type RegistryErrorCode } from './errors.js';
import type { CertificateStatus, DeviceStatus } from './model.js';

const CERTIFICATE: Record<CertificateStatus, readonly CertificateStatus[]> = {
  PENDING_ACTIVATION: ['ACTIVE', 'INACTIVE', 'REVOKED'],
  ACTIVE: ['INACTIVE', 'REVOKED'],
  INACTIVE: ['ACTIVE', 'REVOKED'],
  REVOKED: [],
};

const DEVICE: Record<DeviceStatus, readonly DeviceStatus[]> = {
  ACTIVE: ['DISABLED', 'DECOMMISSIONED'],
  DISABLED: ['ACTIVE', 'DECOMMISSIONED'],
  DECOMMISSIONED: [],
};

const TERMINAL_CODE = { REVOKED: 'certificate_revoked', DECOMMISSIONED: 'device_decommissioned' } as const satisfies Record<string, RegistryErrorCode>;

function check<S extends string>(table: Record<S, readonly S[]>, from: S, to: S, subject: string): boolean {
  if (from === to) return false;
  if (table[from].includes(to)) return true;
  const terminal = TERMINAL_CODE[from as keyof typeof TERMINAL_CODE] as RegistryErrorCode | undefined;
  throw new RegistryError(terminal ?? 'illegal_transition', `${subject}: ${from} → ${to}`);
}

/** True when the move changes something; throws when it is illegal. */
export function certificateMove(from: CertificateStatus, to: CertificateStatus, serial: string): boolean {
  return check(CERTIFICATE, from, to, `certificate ${serial}`);
}

export function deviceMove(from: DeviceStatus, to: DeviceStatus, id: string): boolean {
  return check(DEVICE, from, to, `device ${id}`);
}
