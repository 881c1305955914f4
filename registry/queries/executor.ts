// What every query module runs on: the root Kysely instance or a transaction, plus the one
// dialect difference queries need (row locks exist in PostgreSQL only; SQLite serializes
// writers anyway).
import { CompiledQuery, sql, type Compilable, type InsertObject, type Kysely, type Transaction } from 'kysely';
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

const compiledSelects = new Map<string, string>();

/**
 * Runs a SELECT whose only parameters are one IN list, with its SQL compiled once per list
 * length: these are the queries a CONNECT storm makes, and Kysely building and compiling a
 * query tree each time costs more than SQLite answering it. Lists are padded to a power of
 * two (repeating a value changes nothing in IN), so a handful of lengths cover every batch.
 */
export async function selectWhereIn<Row>(q: QueryContext, name: string, values: readonly unknown[], build: (values: readonly unknown[]) => Compilable<Row>): Promise<Row[]> {
  if (values.length === 0) return [];
  let length = 1;
  while (length < values.length) length *= 2;
  const padded = values.length === length ? values : [...values, ...new Array<unknown>(length - values.length).fill(values[0])];
  const key = `${q.dialect}:${name}:${length}`;
  let sql = compiledSelects.get(key);
  if (sql === undefined) {
    const compiled = build(padded).compile();
    // Only the list may be bound: anything else would be frozen into the cached SQL.
    if (compiled.parameters.length !== length) throw new Error(`${name}: a cached IN query binds ${compiled.parameters.length} parameters for ${length} values`);
    sql = compiled.sql;
    compiledSelects.set(key, sql);
  }
  return (await q.db.executeQuery<Row>(CompiledQuery.raw(sql, [...padded]))).rows;
}

/** The name spaces of advisory locks (the first of PostgreSQL's two lock keys). */
export const LOCK_SPACES = { publicKey: 0x4b4559, caName: 0x434120 } as const;

/**
 * Holds a PostgreSQL advisory lock on each name until the transaction ends, so that
 * "is it taken? then take it" cannot interleave with another node doing the same for a name
 * no row or constraint covers (a key held by one device only; a CA name). Taken in one
 * order, so two transactions never wait on each other in a cycle; a hash collision only
 * serializes two unrelated names. SQLite serializes writers anyway.
 */
export async function lockNames(q: QueryContext, space: number, names: readonly string[]): Promise<void> {
  if (q.dialect !== 'postgres' || names.length === 0) return;
  // The order is the hashes' (ORDER BY h), whatever the order of the names.
  const distinct = [...new Set(names)];
  await sql`SELECT count(pg_advisory_xact_lock(${space}::int4, h)) FROM (SELECT hashtext(n) AS h FROM unnest(${distinct}::text[]) AS n ORDER BY h) AS keys`.execute(q.db);
}
