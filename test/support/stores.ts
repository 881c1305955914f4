// The registry's back ends as tests open them: a SQLite file in a temporary directory, or a
// PostgreSQL schema of its own (dropped afterwards) in the database FLEET_TEST_DATABASE
// names (default: the local test database).
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { openPostgresStore } from '../../registry/postgres.js';
import { openSqliteStore } from '../../registry/sqlite.js';
import type { KyselyRegistryStore } from '../../registry/store.js';

export const TEST_DATABASE = process.env.FLEET_TEST_DATABASE ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface OpenedStore {
  store: KyselyRegistryStore;
  /** Runs raw SQL on the same database, as another client would. */
  rawSql(statement: string): Promise<void>;
  /** The location to give `fleet serve --database` (or a SQLite path). */
  location: string;
  dispose(): Promise<void>;
}

export interface Backend {
  name: string;
  open(): Promise<OpenedStore>;
}

/** A fresh, empty PostgreSQL schema and the URL that selects it. */
export async function postgresSchema(): Promise<{ url: string; drop(): Promise<void> }> {
  const schema = `fleet_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: TEST_DATABASE });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.end();
  const url = new URL(TEST_DATABASE);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: TEST_DATABASE });
      await client.connect();
      await client.query(`DROP SCHEMA ${schema} CASCADE`);
      await client.end();
    },
  };
}

export const BACKENDS: Backend[] = [
  {
    name: 'SQLite',
    async open() {
      const dir = await mkdtemp(join(tmpdir(), 'registry-'));
      const location = join(dir, 'registry.db');
      const store = await openSqliteStore(location);
      const { default: Database } = await import('better-sqlite3');
      return {
        store,
        location,
        rawSql(statement) {
          const db = new Database(location);
          try {
            db.exec(statement);
            return Promise.resolve();
          } catch (error) {
            return Promise.reject(error instanceof Error ? error : new Error(String(error)));
          } finally {
            db.close();
          }
        },
        async dispose() {
          await store.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: 'PostgreSQL',
    async open() {
      const schema = await postgresSchema();
      const store = await openPostgresStore(schema.url, { maxConnections: 4 }).catch(async (error: unknown) => {
        await schema.drop(); // leave no empty schema behind
        throw error;
      });
      return {
        store,
        location: schema.url,
        async rawSql(statement) {
          const client = new pg.Client({ connectionString: schema.url });
          await client.connect();
          try {
            await client.query(statement);
          } finally {
            await client.end();
          }
        },
        async dispose() {
          await store.close();
          await schema.drop();
        },
      };
    },
  },
];
