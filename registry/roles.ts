// Who may do what: a closed set of roles in one table. Operator tokens and station
// certificates carry roles; a device's own certificate is the `device` role and nothing
// else. Every API route names the roles that may call it (provisioning/api/access.ts).

export const ROLES = {
  admin: { holders: ['operator'], summary: 'everything but server-side key generation: operators, stations, CAs and their policies, and all an operator does' },
  operator: { holders: ['operator'], summary: 'runs the fleet: devices, certificates, groups, broker operations, break-glass; reads everything' },
  provisioner: { holders: ['operator', 'station'], summary: 'registers devices and enrolls them: single CSRs, NDJSON batches, EST simpleenroll' },
  keygen: { holders: ['operator', 'station'], summary: 'has the service generate a device key and returns it once, encrypted' },
  auditor: { holders: ['operator', 'station'], summary: 'reads devices, certificates, CAs, groups, the audit log and reports; changes nothing' },
  device: { holders: ['device'], summary: 'a device’s own certificate: renews it (POST /v1/renew, EST simplereenroll), nothing else' },
} as const satisfies Record<string, { holders: readonly ('operator' | 'station' | 'device')[]; summary: string }>;

export type Role = keyof typeof ROLES;
export const ALL_ROLES = Object.keys(ROLES) as Role[];

export function isRole(value: string): value is Role {
  return Object.hasOwn(ROLES, value);
}

/** Whether a holder of this kind may be given the role. */
export function assignable(role: Role, holder: 'operator' | 'station'): boolean {
  return (ROLES[role].holders as readonly string[]).includes(holder);
}

/** Whether a principal holding `held` may call something open to `allowed`. */
export function permits(held: readonly string[], allowed: readonly Role[]): boolean {
  return held.some((role) => (allowed as readonly string[]).includes(role));
}
