// Concurrent API calls on a service whose registry is PostgreSQL: the loser of a race gets
// its coded 409, never a 500, and the winner is whole (a CA created twice at once keeps the
// key it was recorded with).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startFleet, type TestFleet } from '../support/fleet.js';
import { ecKeyWithCsr } from '../support/keys.js';
import { postgresSchema } from '../support/stores.js';

describe('races on PostgreSQL', { timeout: 90_000 }, () => {
  let fleet: TestFleet;
  let schema: Awaited<ReturnType<typeof postgresSchema>>;
  before(async () => {
    schema = await postgresSchema();
    fleet = await startFleet({ database: schema.url });
  });
  after(async () => {
    await fleet.close();
    await schema.drop();
  });

  const answer = (r: { status: number; json?: { error?: { code?: string } } }): [number, string | undefined] => [r.status, r.json?.error?.code];

  it('creates a CA asked for twice at once exactly once: 201 and 409 ca_exists, and the CA signs', async () => {
    for (const name of ['twin-1', 'twin-2', 'twin-3']) {
      const both = await Promise.all([fleet.api('/v1/cas', { body: { name } }), fleet.api('/v1/cas', { body: { name } })]);
      assert.deepEqual(both.map(answer).sort(), [[201, undefined], [409, 'ca_exists']], name);
      assert.equal((await fleet.api('/v1/devices', { body: { id: `under-${name}` } })).status, 201);
      const enrolled = await fleet.api(`/v1/devices/under-${name}/certificates`, { body: { csr: (await ecKeyWithCsr()).csrPem, ca: name } });
      assert.deepEqual([enrolled.status, enrolled.json.ca], [201, name], enrolled.body.toString());
    }
  });

  it('certifies a key sent for two devices at once for one of them: the other gets 409 public_key_in_use', async () => {
    for (let round = 0; round < 5; round++) {
      const ids = [`key-race-a-${round}`, `key-race-b-${round}`];
      for (const id of ids) assert.equal((await fleet.api('/v1/devices', { body: { id } })).status, 201);
      const { csrPem } = await ecKeyWithCsr();
      const both = await Promise.all(ids.map((id) => fleet.api(`/v1/devices/${id}/certificates`, { body: { csr: csrPem } })));
      assert.deepEqual(both.map(answer).sort(), [[201, undefined], [409, 'public_key_in_use']], `round ${round}`);
    }
  });
});
