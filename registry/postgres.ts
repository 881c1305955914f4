// The cluster back end: PostgreSQL through a pg pool. A schema other than public can be
// chosen with the URL's options, e.g. ?options=-c%20search_path%3Dfleet.
import { Kysely, PostgresDialect, sql, type DatabaseIntrospector, type DatabaseMetadata, type SchemaMetadata, type TableMetadata } from 'kysely';
import pg from 'pg';
import type { RegistryDatabase } from './schema.js';
import { kyselyStore, type KyselyRegistryStore } from './store.js';

const INT8_OID = 20;

// BIGINT (epoch milliseconds here) arrives as a string by default; these values fit a double.
type Parser = (value: string) => unknown;
const builtin = pg.types.getTypeParser as (oid: number, format?: 'text' | 'binary') => Parser;
const parseInt8: Parser = (value) => Number(value);
const types = { getTypeParser: (oid: number, format?: 'text' | 'binary') => (oid === INT8_OID ? parseInt8 : builtin(oid, format)) };

/**
 * What the migrator asks of the database, about the registry's own schema only. Kysely's
 * own introspector reads every schema of the database and calls functions on each table it
 * finds, so a schema dropped meanwhile by someone else (another registry, a test run) fails
 * the migration here.
 */
class OwnSchemaIntrospector implements DatabaseIntrospector {
  constructor(private readonly db: Kysely<unknown>) {}

  async getSchemas(): Promise<SchemaMetadata[]> {
    const { rows } = await sql<{ name: string }>`SELECT current_schema() AS name`.execute(this.db);
    return rows;
  }

  async getTables(): Promise<TableMetadata[]> {
    const { rows } = await sql<{ name: string; schema: string; kind: string }>`
      SELECT c.relname AS name, n.nspname AS schema, c.relkind AS kind
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v')`.execute(this.db);
    return rows.map((r) => ({ name: r.name, schema: r.schema, isView: r.kind === 'v', columns: [] }));
  }

  async getMetadata(): Promise<DatabaseMetadata> {
    return { tables: await this.getTables() };
  }
}

class RegistryPostgresDialect extends PostgresDialect {
  override createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new OwnSchemaIntrospector(db);
  }
}

export async function openPostgresStore(url: string, options: { maxConnections?: number } = {}): Promise<KyselyRegistryStore> {
  // A database that cannot be reached fails a query in seconds rather than leaving it (and
  // the CONNECT waiting on it) hanging: the broker then fails closed with registry_unavailable.
  const pool = new pg.Pool({ connectionString: url, max: options.maxConnections ?? 10, connectionTimeoutMillis: 5000, types });
  // An idle client that loses its connection is replaced; the next query reports the outage.
  pool.on('error', () => undefined);
  const db = new Kysely<RegistryDatabase>({ dialect: new RegistryPostgresDialect({ pool }) });
  const store = kyselyStore(db, 'postgres', () => currentSchema(db));
  try {
    await store.migrate();
  } catch (error) {
    await store.close();
    throw error;
  }
  return store;
}

/** The schema unqualified names resolve to: the first existing one on the search_path. */
async function currentSchema(db: Kysely<RegistryDatabase>): Promise<string> {
  const { rows } = await sql<{ schema: string | null }>`SELECT current_schema() AS schema`.execute(db);
  const schema = rows[0]?.schema;
  if (!schema) throw new Error('no schema on the search_path exists; create it or fix the URL’s search_path');
  return schema;
}
