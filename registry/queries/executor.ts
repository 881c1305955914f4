// What every query module runs on: the root Kysely instance or a transaction, plus the one
// dialect difference queries need (row locks exist in PostgreSQL only; SQLite serializes
// writers anyway).
import { CompiledQuery, type InsertObject, type Kysely, type Transaction } from 'kysely';
import type { Dialect } from '../migrations.js';
import type { RegistryDatabase } from '../schema.js';

export interface QueryContext {
  db: Kysely<RegistryDatabase> | Transaction<RegistryDatabase>;
  dialect: Dialect;
}

export const toDate = (ms: number | string) => new Date(Number(ms));
export const toOptionalDate = (ms: number | string | null) => (ms === null ? undefined : new Date(Number(ms)));
export const orUndefined = <T>(value: T | null): T | undefined => value ?? undefined;

/** Splits a long IN list: SQLite allows at most 32,766 bound parameters per statement. */
export function chunks<T>(items: readonly T[], size = 5000): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

const compiledInserts = new Map<string, string>();

/**
 * INSERTs many rows of fixed columns. Kysely builds and compiles a query tree on every call,
 * which for a few hundred rows costs more than the database storing them; the SQL for a
 * table, its columns and a row count never changes, so it is compiled once and only the
 * parameters are bound each time. Rows go in slices that keep under either database's
 * parameter limit.
 */
export async function insertRows<T extends keyof RegistryDatabase>(q: QueryContext, table: T, columns: readonly (keyof RegistryDatabase[T] & string)[], rows: readonly unknown[][]): Promise<void> {
  const perStatement = Math.max(1, Math.floor(4800 / columns.length));
  for (const slice of chunks(rows, perStatement)) {
    const key = `${q.dialect}:${table}:${columns.join(',')}:${slice.length}`;
    let sql = compiledInserts.get(key);
    if (sql === undefined) {
      // Placeholder rows: only the SQL text is kept.
      const placeholder = Object.fromEntries(columns.map((c) => [c, 0])) as InsertObject<RegistryDatabase, T>;
      sql = q.db.insertInto(table).values(slice.map(() => placeholder)).compile().sql;
      compiledInserts.set(key, sql);
    }
    await q.db.executeQuery(CompiledQuery.raw(sql, slice.flat()));
  }
}
