// The cluster back end: PostgreSQL through a pg pool. A schema other than public can be
// chosen with the URL's options, e.g. ?options=-c%20search_path%3Dfleet.
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { RegistryDatabase } from './schema.js';
import { kyselyStore, type KyselyRegistryStore } from './store.js';

const INT8_OID = 20;

// BIGINT (epoch milliseconds here) arrives as a string by default; these values fit a double.
type Parser = (value: string) => unknown;
const builtin = pg.types.getTypeParser as (oid: number, format?: 'text' | 'binary') => Parser;
const parseInt8: Parser = (value) => Number(value);
const types = { getTypeParser: (oid: number, format?: 'text' | 'binary') => (oid === INT8_OID ? parseInt8 : builtin(oid, format)) };

export async function openPostgresStore(url: string, options: { maxConnections?: number } = {}): Promise<KyselyRegistryStore> {
  const pool = new pg.Pool({ connectionString: url, max: options.maxConnections ?? 10, types });
  // An idle client that loses its connection is replaced; the next query reports the outage.
  pool.on('error', () => undefined);
  const db = new Kysely<RegistryDatabase>({ dialect: new PostgresDialect({ pool }) });
  const store = kyselyStore(db, 'postgres', async () => (await sql<{ schema: string }>`SELECT current_schema() AS schema`.execute(db)).rows[0]!.schema);
  await store.migrate();
  return store;
}
