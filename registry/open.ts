// Opens the registry named by a URL: postgres://… for PostgreSQL, anything else is a SQLite
// file path.
import { openPostgresStore } from './postgres.js';
import { openSqliteStore } from './sqlite.js';
import type { KyselyRegistryStore } from './store.js';

export function isPostgresUrl(location: string): boolean {
  return /^postgres(ql)?:\/\//.test(location);
}

export function openStore(location: string): Promise<KyselyRegistryStore> {
  return isPostgresUrl(location) ? openPostgresStore(location) : openSqliteStore(location);
}
