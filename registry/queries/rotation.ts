// Issuing CAs in rotation: which is prepared, which signs, which were superseded or retired.
import type { Selectable } from 'kysely';
import type { IssuingCa, IssuingState } from '../model.js';
import type { IssuingCasTable } from '../schema.js';
import { toOptionalDate, type QueryContext } from './executor.js';

function toIssuing(row: Selectable<IssuingCasTable>): IssuingCa {
  return {
    caId: row.ca_id,
    state: row.state as IssuingState,
    generation: Number(row.generation),
    preparedAt: toOptionalDate(row.prepared_at),
    activatedAt: toOptionalDate(row.activated_at),
    supersededAt: toOptionalDate(row.superseded_at),
    retiredAt: toOptionalDate(row.retired_at),
  };
}

const STAMP: Record<IssuingState, 'prepared_at' | 'activated_at' | 'superseded_at' | 'retired_at'> = {
  prepared: 'prepared_at',
  active: 'activated_at',
  old: 'superseded_at',
  retired: 'retired_at',
};

export class RotationQueries {
  constructor(private readonly q: QueryContext) {}

  async all(options: { lock?: boolean } = {}): Promise<IssuingCa[]> {
    let query = this.q.db.selectFrom('issuing_cas').selectAll().orderBy('generation');
    if (options.lock && this.q.dialect === 'postgres') query = query.forUpdate();
    return (await query.execute()).map(toIssuing);
  }

  async insert(ca: IssuingCa): Promise<void> {
    await this.q.db
      .insertInto('issuing_cas')
      .values({
        ca_id: ca.caId,
        state: ca.state,
        generation: ca.generation,
        prepared_at: ca.preparedAt?.getTime() ?? null,
        activated_at: ca.activatedAt?.getTime() ?? null,
        superseded_at: ca.supersededAt?.getTime() ?? null,
        retired_at: ca.retiredAt?.getTime() ?? null,
      })
      .execute();
  }

  /** Moves a CA to `state`, stamping when it got there. */
  async setState(caId: string, state: IssuingState, at: Date): Promise<void> {
    await this.q.db
      .updateTable('issuing_cas')
      .set({ state, [STAMP[state]]: at.getTime() })
      .where('ca_id', '=', caId)
      .execute();
  }

  /** Certificates under a CA that still need it: active or awaiting activation, and not expired. */
  async dependents(caId: string, now: Date): Promise<number> {
    const row = await this.q.db
      .selectFrom('certificates')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('ca_id', '=', caId)
      .where('status', 'in', ['ACTIVE', 'PENDING_ACTIVATION'])
      .where('not_after', '>', now.getTime())
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }
}
