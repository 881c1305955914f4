// Idempotency of factory batches: which certificate each (request, line) produced.
import type { SerialHex } from '../ids.js';
import { chunks, type QueryContext } from './executor.js';

export interface BatchKey {
  requestId: string;
  lineId: string;
}

const keyOf = (k: BatchKey) => `${k.requestId}\n${k.lineId}`;

export class BatchQueries {
  constructor(private readonly q: QueryContext) {}

  /** The serial each key already produced; keys that produced nothing are absent. */
  async serials(keys: readonly BatchKey[]): Promise<Map<string, SerialHex>> {
    const found = new Map<string, SerialHex>();
    const byRequest = new Map<string, string[]>();
    for (const k of keys) byRequest.set(k.requestId, [...(byRequest.get(k.requestId) ?? []), k.lineId]);
    for (const [requestId, lineIds] of byRequest) {
      for (const slice of chunks([...new Set(lineIds)])) {
        const rows = await this.q.db.selectFrom('batch_lines').select(['line_id', 'serial']).where('request_id', '=', requestId).where('line_id', 'in', slice).execute();
        for (const r of rows) found.set(keyOf({ requestId, lineId: r.line_id }), r.serial as SerialHex);
      }
    }
    return found;
  }

  /** Forgets the lines recorded before `cutoff`; returns how many. */
  async forgetBefore(cutoff: Date): Promise<number> {
    const result = await this.q.db.deleteFrom('batch_lines').where('created_at', '<', cutoff.getTime()).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  /**
   * Claims keys for the serials about to be recorded; returns the keys it claimed. A key
   * another transaction claimed first is left as it is (PostgreSQL waits for that one to
   * commit), and its line is answered with that certificate instead.
   */
  async claim(rows: readonly (BatchKey & { serial: SerialHex })[], at: Date): Promise<Set<string>> {
    const claimed = new Set<string>();
    for (const slice of chunks(rows, 1000)) {
      const inserted = await this.q.db
        .insertInto('batch_lines')
        .values(slice.map((r) => ({ request_id: r.requestId, line_id: r.lineId, serial: r.serial, created_at: at.getTime() })))
        .onConflict((c) => c.columns(['request_id', 'line_id']).doNothing())
        .returning(['request_id', 'line_id'])
        .execute();
      for (const r of inserted) claimed.add(keyOf({ requestId: r.request_id, lineId: r.line_id }));
    }
    return claimed;
  }
}

export { keyOf as batchKeyOf };
