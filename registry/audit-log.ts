// Reading the audit log: filtered, in order, a page at a time.
import type { AuditEntry } from './model.js';
import type { AuditFilter } from './queries/audit.js';
import type { RegistryStore } from './store.js';

export const MAX_AUDIT_PAGE = 500;

export class AuditLog {
  constructor(private readonly store: RegistryStore) {}

  /** One page; `next` is the cursor for the following one, absent on the last page. */
  async page(filter: Omit<AuditFilter, 'limit'> & { limit?: number }): Promise<{ entries: AuditEntry[]; next?: number }> {
    const limit = Math.min(Math.max(1, filter.limit ?? 100), MAX_AUDIT_PAGE);
    const rows = await this.store.audit.find({ ...filter, limit: limit + 1 });
    const entries = rows.slice(0, limit);
    return { entries, next: rows.length > limit ? entries[entries.length - 1]!.id : undefined };
  }
}
