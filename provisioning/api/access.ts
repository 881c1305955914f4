// What each route lets in, declared on the route itself: public, or the roles that may call
// it. A route that declares nothing makes the API refuse to start, so none can be forgotten;
// a test walks every route with a principal lacking its roles.
import type { FastifyInstance } from 'fastify';
import type { Role } from '../../registry/roles.js';

export type Access = { public: true } | { roles: readonly Role[]; renewal?: boolean };

export const PUBLIC: Access = { public: true };
/** Reading the fleet. */
export const READERS: Access = { roles: ['admin', 'operator', 'auditor'] };
/** Reading a device, for those who register and enroll devices too. */
export const DEVICE_READERS: Access = { roles: ['admin', 'operator', 'auditor', 'provisioner'] };
/** Registering and enrolling devices. */
export const PROVISIONERS: Access = { roles: ['admin', 'operator', 'provisioner'] };
/** Running the fleet: status changes, groups, broker operations, break-glass. */
export const OPERATORS: Access = { roles: ['admin', 'operator'] };
/** The trust hierarchy, its policies and the stations. */
export const ADMINS: Access = { roles: ['admin'] };
/** Server-side key generation: granted on its own, never implied by another role. */
export const KEY_GENERATORS: Access = { roles: ['keygen'] };
/** A device renewing its own certificate. */
export const RENEWING_DEVICES: Access = { roles: ['device'], renewal: true };

/** Route options carrying an access declaration. */
export const access = (a: Access) => ({ config: { access: a } });

export interface DeclaredRoute {
  method: string;
  url: string;
  access: Access;
}

/**
 * Refuses, at registration, any route that does not declare who may call it, and returns
 * the declarations as routes are added (GET /v1/access lists them).
 */
export function requireAccessDeclarations(app: FastifyInstance): DeclaredRoute[] {
  const declared: DeclaredRoute[] = [];
  app.addHook('onRoute', (route) => {
    const a = route.config?.access;
    if (!a) throw new Error(`route ${String(route.method)} ${route.url} declares no access`);
    for (const method of [route.method].flat()) if (method !== 'HEAD') declared.push({ method, url: route.url, access: a });
  });
  return declared;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
  }
}
