// Per-CA policies, kept as JSON: a policy gains fields more often than the schema should change.
import type { CaPolicy } from '../model.js';
import type { QueryContext } from './executor.js';

export class CaPolicyQueries {
  constructor(private readonly q: QueryContext) {}

  async get(caId: string): Promise<Partial<CaPolicy> | undefined> {
    const row = await this.q.db.selectFrom('ca_policies').select('policy').where('ca_id', '=', caId).executeTakeFirst();
    return row && (JSON.parse(row.policy) as Partial<CaPolicy>);
  }

  async set(caId: string, policy: CaPolicy, at: Date): Promise<void> {
    const values = { policy: JSON.stringify(policy), updated_at: at.getTime() };
    await this.q.db
      .insertInto('ca_policies')
      .values({ ca_id: caId, ...values })
      .onConflict((c) => c.column('ca_id').doUpdateSet(values))
      .execute();
  }
}
