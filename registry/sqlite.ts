// The embedded back end: one SQLite file in WAL mode.
import Database from 'better-sqlite3';
import { CompiledQuery, Kysely, SqliteDialect, type DatabaseConnection, type Driver } from 'kysely';
import type { RegistryDatabase } from './schema.js';
import { kyselyStore, type KyselyRegistryStore } from './store.js';

export async function openSqliteStore(path: string): Promise<KyselyRegistryStore> {
  const database = new Database(path);
  database.pragma('journal_mode = WAL');
  // FULL: a commit is on disk before it returns, so an acknowledged revocation survives a
  // power cut, not only a crashed process. Costs about 0.3 ms per commit on this class of disk.
  database.pragma('synchronous = FULL');
  database.pragma('foreign_keys = ON');
  database.pragma('busy_timeout = 5000');
  // A 32 MiB page cache (the default is 2 MiB): issuance inserts into several indexes keyed by
  // hashes (fingerprint, public key), which touch pages all over them; with the default they
  // are read back from the file for every group commit. Measured: about a third less CPU per
  // recorded certificate at 12,000 certificates. Costs up to 32 MiB of memory once the file is that large.
  database.pragma('cache_size = -32768');
  // Kysely prepares a statement for every query; better-sqlite3 statements are reusable, and
  // preparing costs more than running most of ours. Keep them by SQL text (a bounded set:
  // the queries are fixed, only their parameters vary).
  const statements = new Map<string, Database.Statement>();
  const prepared = {
    close: () => database.close(),
    prepare(sqlText: string) {
      let statement = statements.get(sqlText);
      if (!statement) {
        statement = database.prepare(sqlText);
        if (statements.size < 1000) statements.set(sqlText, statement);
      }
      return statement;
    },
  };
  const store = kyselyStore(new Kysely<RegistryDatabase>({ dialect: new WritersWaitDialect({ database: prepared }) }), 'sqlite');
  await store.migrate();
  return store;
}

/**
 * Every transaction of ours writes, most after reading what they change (`lock: true`, which
 * is FOR UPDATE on PostgreSQL). SQLite's plain BEGIN takes the write lock only at the first
 * write, and a transaction that then finds another process writing (a second worker of
 * `--workers`, the CLI beside a running service) fails at once with SQLITE_BUSY: its busy
 * timeout does not apply, since waiting could deadlock. BEGIN IMMEDIATE takes the write lock
 * first, so a second writer waits its turn (busy_timeout) and then reads what the first wrote.
 */
class WritersWaitDialect extends SqliteDialect {
  override createDriver(): Driver {
    const driver = super.createDriver();
    driver.beginTransaction = async (connection: DatabaseConnection) => {
      await connection.executeQuery(CompiledQuery.raw('begin immediate'));
    };
    return driver;
  }
}
