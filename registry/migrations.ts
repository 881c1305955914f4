// Versioned schema changes for both back ends, applied in order at start. A migration never
// changes once it has shipped: a new change is a new entry.
import { sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';

export type Dialect = 'sqlite' | 'postgres';

function migrations(dialect: Dialect): Record<string, Migration> {
  const serialKey = dialect === 'postgres' ? 'bigserial' : 'integer';
  return {
    '001_registry': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('cas')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('name', 'text', (c) => c.notNull().unique())
          .addColumn('parent_id', 'text', (c) => c.references('cas.id'))
          .addColumn('subject', 'text', (c) => c.notNull())
          .addColumn('serial', 'text', (c) => c.notNull())
          .addColumn('key_id', 'text', (c) => c.notNull())
          .addColumn('pem', 'text', (c) => c.notNull())
          .addColumn('not_before', 'bigint', (c) => c.notNull())
          .addColumn('not_after', 'bigint', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('external', 'integer', (c) => c.notNull())
          .addColumn('unknown_certificates', 'text')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('revoked_at', 'bigint')
          .addColumn('revocation_reason', 'text')
          .execute();

        await db.schema
          .createTable('devices')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('attributes', 'text', (c) => c.notNull())
          .addColumn('gateway', 'integer', (c) => c.notNull())
          .addColumn('gateway_id', 'text', (c) => c.references('devices.id'))
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('devices_gateway').on('devices').column('gateway_id').execute();

        await db.schema
          .createTable('certificates')
          .addColumn('serial', 'text', (c) => c.primaryKey())
          .addColumn('fingerprint', 'text', (c) => c.notNull().unique())
          .addColumn('public_key_sha256', 'text', (c) => c.notNull())
          .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id'))
          .addColumn('ca_id', 'text', (c) => c.notNull().references('cas.id'))
          .addColumn('not_before', 'bigint', (c) => c.notNull())
          .addColumn('not_after', 'bigint', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('pem', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('revoked_at', 'bigint')
          .addColumn('revocation_reason', 'text')
          .execute();
        await db.schema.createIndex('certificates_device').on('certificates').column('device_id').execute();
        await db.schema.createIndex('certificates_public_key').on('certificates').column('public_key_sha256').execute();
        await db.schema.createIndex('certificates_ca_status').on('certificates').columns(['ca_id', 'status']).execute();
        await db.schema.createIndex('certificates_not_after').on('certificates').column('not_after').execute();

        await db.schema
          .createTable('groups')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('description', 'text', (c) => c.notNull())
          .addColumn('policy', 'text', (c) => c.notNull())
          .addColumn('enforcement', 'text', (c) => c.notNull().defaultTo('enforce'))
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('group_members')
          .addColumn('group_id', 'text', (c) => c.notNull().references('groups.id'))
          .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id'))
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('group_members_pk', ['group_id', 'device_id'])
          .execute();
        await db.schema.createIndex('group_members_device').on('group_members').column('device_id').execute();

        await db.schema
          .createTable('registration_codes')
          .addColumn('code', 'text', (c) => c.primaryKey())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .addColumn('used_at', 'bigint')
          .execute();

        await db.schema
          .createTable('audit')
          .addColumn('id', serialKey, (c) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
          .addColumn('at', 'bigint', (c) => c.notNull())
          .addColumn('actor', 'text', (c) => c.notNull())
          .addColumn('action', 'text', (c) => c.notNull())
          .addColumn('subject_type', 'text', (c) => c.notNull())
          .addColumn('subject_id', 'text', (c) => c.notNull())
          .addColumn('device_id', 'text')
          .addColumn('certificate_serial', 'text')
          .addColumn('reason', 'text')
          .addColumn('details', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('audit_subject').on('audit').columns(['subject_type', 'subject_id']).execute();
        await db.schema.createIndex('audit_device').on('audit').columns(['device_id', 'id']).execute();
        await db.schema.createIndex('audit_certificate').on('audit').columns(['certificate_serial', 'id']).execute();
        await db.schema.createIndex('audit_actor').on('audit').columns(['actor', 'id']).execute();
        await db.schema.createIndex('audit_at').on('audit').column('at').execute();

        await db.schema
          .createTable('sightings')
          .addColumn('id', serialKey, (c) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
          .addColumn('at', 'bigint', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('fingerprint', 'text')
          .addColumn('device_id', 'text')
          .addColumn('client_id', 'text')
          .addColumn('details', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('sightings_kind').on('sightings').columns(['kind', 'at']).execute();

        await db.schema
          .createTable('operators')
          .addColumn('name', 'text', (c) => c.primaryKey())
          .addColumn('token_sha256', 'text', (c) => c.notNull().unique())
          .addColumn('roles', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('disabled_at', 'bigint')
          .execute();

        await db.schema
          .createTable('settings')
          .addColumn('key', 'text', (c) => c.primaryKey())
          .addColumn('value', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .execute();

        await db.schema
          .createTable('grants')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id'))
          .addColumn('fingerprint', 'text')
          .addColumn('waives', 'text', (c) => c.notNull())
          .addColumn('reason', 'text', (c) => c.notNull())
          .addColumn('duration_ms', 'bigint', (c) => c.notNull())
          .addColumn('requested_by', 'text', (c) => c.notNull())
          .addColumn('approved_by', 'text')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('approved_at', 'bigint')
          .addColumn('expires_at', 'bigint')
          .addColumn('closed_by', 'text')
          .addColumn('closed_at', 'bigint')
          .execute();
        await db.schema.createIndex('grants_device').on('grants').column('device_id').execute();

        // The audit log is append-only: the database itself refuses to rewrite history.
        if (dialect === 'postgres') {
          await sql`CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN RAISE EXCEPTION 'audit log is append-only'; END $$`.execute(db);
          await sql`CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
                    FOR EACH ROW EXECUTE FUNCTION audit_append_only()`.execute(db);
        } else {
          await sql`CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
                    BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END`.execute(db);
          await sql`CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
                    BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END`.execute(db);
        }
      },
    },
    '002_claims_and_rotation': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('claim_batches')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('template', 'text', (c) => c.notNull())
          .addColumn('hook', 'text')
          .addColumn('rate_limit', 'text', (c) => c.notNull())
          .addColumn('ca_id', 'text', (c) => c.notNull().references('cas.id'))
          .addColumn('serial', 'text', (c) => c.notNull().unique())
          .addColumn('fingerprint', 'text', (c) => c.notNull().unique())
          .addColumn('public_key_sha256', 'text', (c) => c.notNull())
          .addColumn('pem', 'text', (c) => c.notNull())
          .addColumn('not_before', 'bigint', (c) => c.notNull())
          .addColumn('not_after', 'bigint', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('revoked_at', 'bigint')
          .addColumn('revocation_reason', 'text')
          .execute();
        await db.schema.createIndex('claim_batches_ca').on('claim_batches').columns(['ca_id', 'status']).execute();

        await db.schema
          .createTable('claim_certificates')
          .addColumn('serial', 'text', (c) => c.primaryKey().references('certificates.serial'))
          .addColumn('batch_id', 'text', (c) => c.notNull().references('claim_batches.id'))
          .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id'))
          .addColumn('binding', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('registered_at', 'bigint')
          .execute();
        await db.schema.createIndex('claim_certificates_device').on('claim_certificates').column('device_id').execute();
        await db.schema.createIndex('claim_certificates_batch').on('claim_certificates').column('batch_id').execute();

        await db.schema
          .createTable('issuing_cas')
          .addColumn('ca_id', 'text', (c) => c.primaryKey().references('cas.id'))
          .addColumn('state', 'text', (c) => c.notNull())
          .addColumn('generation', 'integer', (c) => c.notNull())
          .addColumn('prepared_at', 'bigint')
          .addColumn('activated_at', 'bigint')
          .addColumn('superseded_at', 'bigint')
          .addColumn('retired_at', 'bigint')
          .execute();
      },
    },
    '003_stations': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('stations')
          .addColumn('name', 'text', (c) => c.primaryKey())
          .addColumn('roles', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('serial', 'text', (c) => c.notNull().unique())
          .addColumn('fingerprint', 'text', (c) => c.notNull().unique())
          .addColumn('ca_id', 'text', (c) => c.notNull().references('cas.id'))
          .addColumn('not_before', 'bigint', (c) => c.notNull())
          .addColumn('not_after', 'bigint', (c) => c.notNull())
          .addColumn('pem', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('revoked_at', 'bigint')
          .addColumn('revocation_reason', 'text')
          .execute();
        await db.schema.createIndex('stations_ca_status').on('stations').columns(['ca_id', 'status']).execute();
        // Before roles were checked, every operator could do everything: keep that for the
        // operators that exist, rather than lock them out of their own fleet.
        await sql`UPDATE operators SET roles = '["admin"]' WHERE roles NOT LIKE '["%'`.execute(db);
      },
    },
    '004_renewal': {
      async up(db: Kysely<unknown>) {
        await db.schema.alterTable('certificates').addColumn('renewed_from', 'text').execute();
        await db.schema.alterTable('certificates').addColumn('predecessor_retires_at', 'bigint').execute();
        await db.schema.createIndex('certificates_predecessor_retires').on('certificates').column('predecessor_retires_at').execute();
        await db.schema
          .createTable('ca_policies')
          .addColumn('ca_id', 'text', (c) => c.primaryKey().references('cas.id'))
          .addColumn('policy', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .execute();
      },
    },
    '005_batches': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('batch_lines')
          .addColumn('request_id', 'text', (c) => c.notNull())
          .addColumn('line_id', 'text', (c) => c.notNull())
          // No reference to certificates: the key is claimed before the certificate is inserted.
          .addColumn('serial', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('batch_lines_pk', ['request_id', 'line_id'])
          .execute();
      },
    },
    '006_batch_retention': {
      async up(db: Kysely<unknown>) {
        // The retention sweep deletes by age: without this it reads every line kept.
        await db.schema.createIndex('batch_lines_created_at').on('batch_lines').column('created_at').execute();
      },
    },
  };
}

export function registryMigrations(dialect: Dialect): MigrationProvider {
  return { getMigrations: () => Promise.resolve(migrations(dialect)) };
}
