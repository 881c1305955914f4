// Operators: the people and tools that call the API, each with a token of their own (so a
// second operator can approve what a first one asked for). Only a hash of a token is kept.
import { createHash, randomBytes } from 'node:crypto';
import type { Changes } from './changes.js';
import { RegistryError } from './errors.js';
import type { Actor, Operator } from './model.js';
import { assignable, isRole } from './roles.js';
import type { RegistryStore } from './store.js';

export const tokenHash = (token: string) => createHash('sha256').update(token).digest('hex');

const CACHE_MS = 30_000;

export class Operators {
  readonly #cache = new Map<string, { operator?: Operator; until: number }>();

  constructor(
    private readonly store: RegistryStore,
    private readonly changes: Changes,
  ) {}

  /** Creates an operator and returns its token: shown once, never stored. */
  async add(name: string, roles: string[], actor: Actor): Promise<{ operator: Operator; token: string }> {
    const token = randomBytes(32).toString('base64url');
    const operator = await this.record(name, roles, token, actor);
    return { operator, token };
  }

  /** Records an operator whose token already exists (the data directory's admin token). */
  async record(name: string, roles: string[], token: string, actor: Actor): Promise<Operator> {
    const bad = roles.filter((r) => !isRole(r) || !assignable(r, 'operator'));
    if (bad.length > 0 || roles.length === 0) throw new RegistryError('role_unknown', bad.length > 0 ? bad.join(', ') : 'an operator needs at least one role');
    return this.changes.run(actor, async ({ tx, at, audit }) => {
      const operator: Operator = { name, roles, createdAt: at };
      if (!(await tx.operators.insert(operator, tokenHash(token)))) throw new RegistryError('operator_exists', name);
      audit({ action: 'operator.created', subjectType: 'operator', subjectId: name, details: { roles } });
      return operator;
    });
  }

  /** The operator a bearer token belongs to, if any (cached briefly: this runs on every call). */
  async authenticate(token: string): Promise<Operator | undefined> {
    const hash = tokenHash(token);
    const now = Date.now();
    const cached = this.#cache.get(hash);
    if (cached && cached.until > now) return cached.operator;
    const operator = await this.store.operators.byTokenHash(hash);
    const usable = operator && !operator.disabledAt ? operator : undefined;
    if (this.#cache.size > 1000) this.#cache.clear();
    this.#cache.set(hash, { operator: usable, until: now + CACHE_MS });
    return usable;
  }

  list(): Promise<Operator[]> {
    return this.store.operators.all();
  }
}
