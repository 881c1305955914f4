// Claim batches and the certificates issued through them.
import type { Selectable } from 'kysely';
import type { DeviceId, Fingerprint, SerialHex } from '../ids.js';
import type { ClaimBatch, ClaimBatchStatus, ClaimBinding, ClaimHook, ClaimTemplate, JsonObject } from '../model.js';
import type { ClaimBatchesTable, ClaimCertificatesTable } from '../schema.js';
import { orUndefined, toDate, toOptionalDate, type QueryContext } from './executor.js';

function toBatch(row: Selectable<ClaimBatchesTable>): ClaimBatch {
  return {
    id: row.id,
    status: row.status as ClaimBatchStatus,
    template: JSON.parse(row.template) as ClaimTemplate,
    hook: row.hook === null ? undefined : (JSON.parse(row.hook) as ClaimHook),
    rateLimit: JSON.parse(row.rate_limit) as ClaimBatch['rateLimit'],
    caId: row.ca_id,
    serial: row.serial as SerialHex,
    fingerprint: row.fingerprint as Fingerprint,
    publicKeySha256: row.public_key_sha256,
    pem: row.pem,
    notBefore: toDate(row.not_before),
    notAfter: toDate(row.not_after),
    createdAt: toDate(row.created_at),
    revokedAt: toOptionalDate(row.revoked_at),
    revocationReason: orUndefined(row.revocation_reason),
  };
}

function toBinding(row: Selectable<ClaimCertificatesTable>): ClaimBinding {
  const binding = JSON.parse(row.binding) as { parameters: Record<string, string>; attributes: JsonObject; groups: string[] };
  return {
    serial: row.serial as SerialHex,
    batchId: row.batch_id,
    deviceId: row.device_id as DeviceId,
    ...binding,
    createdAt: toDate(row.created_at),
    registeredAt: toOptionalDate(row.registered_at),
  };
}

export class ClaimQueries {
  constructor(private readonly q: QueryContext) {}

  /** Inserts unless the id exists; returns whether it did. */
  async insertBatch(b: ClaimBatch): Promise<boolean> {
    const result = await this.q.db
      .insertInto('claim_batches')
      .values({
        id: b.id,
        status: b.status,
        template: JSON.stringify(b.template),
        hook: b.hook ? JSON.stringify(b.hook) : null,
        rate_limit: JSON.stringify(b.rateLimit),
        ca_id: b.caId,
        serial: b.serial,
        fingerprint: b.fingerprint,
        public_key_sha256: b.publicKeySha256,
        pem: b.pem,
        not_before: b.notBefore.getTime(),
        not_after: b.notAfter.getTime(),
        created_at: b.createdAt.getTime(),
        revoked_at: null,
        revocation_reason: null,
      })
      .onConflict((c) => c.column('id').doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0) === 1;
  }

  async batch(id: string, options: { lock?: boolean } = {}): Promise<ClaimBatch | undefined> {
    let query = this.q.db.selectFrom('claim_batches').selectAll().where('id', '=', id);
    if (options.lock && this.q.dialect === 'postgres') query = query.forUpdate();
    const row = await query.executeTakeFirst();
    return row && toBatch(row);
  }

  async batchByFingerprint(fingerprint: Fingerprint): Promise<ClaimBatch | undefined> {
    const row = await this.q.db.selectFrom('claim_batches').selectAll().where('fingerprint', '=', fingerprint).executeTakeFirst();
    return row && toBatch(row);
  }

  async batches(): Promise<ClaimBatch[]> {
    return (await this.q.db.selectFrom('claim_batches').selectAll().orderBy('created_at').orderBy('id').execute()).map(toBatch);
  }

  /** Whether a claim certificate holds this key (a device must never be certified for it). */
  async batchWithKey(publicKeySha256: string): Promise<ClaimBatch | undefined> {
    const row = await this.q.db.selectFrom('claim_batches').selectAll().where('public_key_sha256', '=', publicKeySha256).executeTakeFirst();
    return row && toBatch(row);
  }

  async revokeBatch(id: string, at: Date, reason?: string): Promise<void> {
    await this.q.db.updateTable('claim_batches').set({ status: 'REVOKED', revoked_at: at.getTime(), revocation_reason: reason ?? null }).where('id', '=', id).execute();
  }

  /** Revoked claim certificates of a CA that have not expired by `now`: entries of its CRL. */
  async revokedUnder(caId: string, now: Date): Promise<{ serial: SerialHex; revokedAt: Date; revocationReason?: string }[]> {
    const rows = await this.q.db
      .selectFrom('claim_batches')
      .select(['serial', 'revoked_at', 'revocation_reason'])
      .where('ca_id', '=', caId)
      .where('status', '=', 'REVOKED')
      .where('not_after', '>', now.getTime())
      .execute();
    return rows.map((r) => ({ serial: r.serial as SerialHex, revokedAt: toDate(r.revoked_at!), revocationReason: orUndefined(r.revocation_reason) }));
  }

  /** Claim batches of a CA still able to admit claim sessions at `now`. */
  async countLiveUnder(caId: string, now: Date): Promise<number> {
    const row = await this.q.db
      .selectFrom('claim_batches')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('ca_id', '=', caId)
      .where('status', '=', 'ACTIVE')
      .where('not_after', '>', now.getTime())
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async insertBinding(b: ClaimBinding): Promise<void> {
    await this.q.db
      .insertInto('claim_certificates')
      .values({
        serial: b.serial,
        batch_id: b.batchId,
        device_id: b.deviceId,
        binding: JSON.stringify({ parameters: b.parameters, attributes: b.attributes, groups: b.groups }),
        created_at: b.createdAt.getTime(),
        registered_at: null,
      })
      .execute();
  }

  async binding(serial: SerialHex, options: { lock?: boolean } = {}): Promise<ClaimBinding | undefined> {
    let query = this.q.db.selectFrom('claim_certificates').selectAll().where('serial', '=', serial);
    if (options.lock && this.q.dialect === 'postgres') query = query.forUpdate();
    const row = await query.executeTakeFirst();
    return row && toBinding(row);
  }

  async bindingsOfDevice(deviceId: DeviceId): Promise<ClaimBinding[]> {
    return (await this.q.db.selectFrom('claim_certificates').selectAll().where('device_id', '=', deviceId).orderBy('created_at').execute()).map(toBinding);
  }

  /** The certificates a batch issued that were never registered to their device. */
  async unregisteredOfBatch(batchId: string): Promise<ClaimBinding[]> {
    return (await this.q.db.selectFrom('claim_certificates').selectAll().where('batch_id', '=', batchId).where('registered_at', 'is', null).orderBy('created_at').execute()).map(toBinding);
  }

  async markRegistered(serial: SerialHex, at: Date): Promise<void> {
    await this.q.db.updateTable('claim_certificates').set({ registered_at: at.getTime() }).where('serial', '=', serial).execute();
  }

  /** How many certificates a batch issued, and how many of them were registered. */
  async counts(batchId: string): Promise<{ issued: number; registered: number }> {
    const row = await this.q.db
      .selectFrom('claim_certificates')
      .select((eb) => [eb.fn.countAll<number>().as('issued'), eb.fn.count<number>('registered_at').as('registered')])
      .where('batch_id', '=', batchId)
      .executeTakeFirstOrThrow();
    return { issued: Number(row.issued), registered: Number(row.registered) };
  }
}
