// The registry's storage port and its one implementation over Kysely. Every query is
// written once; SQLite and PostgreSQL differ only in how the Kysely instance is made and in
// row locks, which only PostgreSQL needs.
import { Migrator, type Kysely } from 'kysely';
import { registryMigrations, type Dialect } from './migrations.js';
import { AuditQueries } from './queries/audit.js';
import { CaQueries } from './queries/cas.js';
import { CertificateQueries } from './queries/certificates.js';
import { ClaimQueries } from './queries/claims.js';
import { DeviceQueries } from './queries/devices.js';
import type { QueryContext } from './queries/executor.js';
import { GroupQueries } from './queries/groups.js';
import { RegistrationCodeQueries, SightingQueries } from './queries/misc.js';
import { GrantQueries, OperatorQueries, SettingQueries } from './queries/operators.js';
import { RotationQueries } from './queries/rotation.js';
import { BatchQueries } from './queries/batches.js';
import { CaPolicyQueries } from './queries/policies.js';
import { StationQueries } from './queries/stations.js';
import type { RegistryDatabase } from './schema.js';

/** Reads and writes, the same inside and outside a transaction. */
export interface RegistryQueries {
  readonly devices: DeviceQueries;
  readonly certificates: CertificateQueries;
  readonly cas: CaQueries;
  readonly groups: GroupQueries;
  readonly codes: RegistrationCodeQueries;
  readonly audit: AuditQueries;
  readonly sightings: SightingQueries;
  readonly operators: OperatorQueries;
  readonly settings: SettingQueries;
  readonly grants: GrantQueries;
  readonly claims: ClaimQueries;
  readonly rotation: RotationQueries;
  readonly stations: StationQueries;
  readonly policies: CaPolicyQueries;
  readonly batches: BatchQueries;
}

export interface RegistryStore extends RegistryQueries {
  readonly dialect: Dialect;
  /** Runs `work` atomically: every write in it lands, or none does. */
  transaction<T>(work: (tx: RegistryQueries) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

function queries(q: QueryContext): RegistryQueries {
  return {
    devices: new DeviceQueries(q),
    certificates: new CertificateQueries(q),
    cas: new CaQueries(q),
    groups: new GroupQueries(q),
    codes: new RegistrationCodeQueries(q),
    audit: new AuditQueries(q),
    sightings: new SightingQueries(q),
    operators: new OperatorQueries(q),
    settings: new SettingQueries(q),
    grants: new GrantQueries(q),
    claims: new ClaimQueries(q),
    rotation: new RotationQueries(q),
    stations: new StationQueries(q),
    policies: new CaPolicyQueries(q),
    batches: new BatchQueries(q),
  };
}

/** The store over a Kysely instance of either dialect; `migrate` brings its schema up to date. */
export type KyselyRegistryStore = RegistryStore & { migrate(): Promise<void> };

/**
 * `migrationSchema`: the PostgreSQL schema the registry lives in. Kysely looks for its
 * migration tables in every schema it can see unless told which one; another registry's
 * tables in a neighbouring schema would then pass for ours and the migration would fail.
 */
export function kyselyStore(root: Kysely<RegistryDatabase>, dialect: Dialect, migrationSchema?: () => Promise<string>): KyselyRegistryStore {
  return {
    ...queries({ db: root, dialect }),
    dialect,
    async migrate() {
      const migrator = new Migrator({ db: root, provider: registryMigrations(dialect), migrationTableSchema: await migrationSchema?.() });
      // Nodes of a cluster may start together on a new database; Kysely serializes the
      // migrations themselves, but creating its own tables can race. A second attempt finds them.
      for (let attempt = 1; ; attempt++) {
        const { error, results } = await migrator.migrateToLatest();
        const failed = results?.find((r) => r.status === 'Error');
        if (!error && !failed) return;
        // Fails loudly rather than run on an old schema.
        if (failed || attempt === 3) {
          const why = error instanceof Error ? `: ${error.message}` : '';
          throw new Error(`registry migration ${failed?.migrationName ?? '(bookkeeping)'} failed${why}`, { cause: error });
        }
        await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
      }
    },
    transaction: (work) => root.transaction().execute((trx) => work(queries({ db: trx, dialect }))),
    close: () => root.destroy(),
  };
}
