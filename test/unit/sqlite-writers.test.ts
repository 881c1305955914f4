// Two processes writing one SQLite registry file (`fleet serve --workers`, or the CLI beside a
// running service): a transaction that reads, then writes, while the other process writes
// waits for it and then sees what it wrote, instead of failing with SQLITE_BUSY. Seen before
// the fix as a worker that died at start, adopting the first issuing CA beside its twin.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { InProcessEventBus } from '../../registry/events.js';
import type { DeviceId } from '../../registry/ids.js';
import { Registry } from '../../registry/registry.js';
import { openSqliteStore } from '../../registry/sqlite.js';
import type { KyselyRegistryStore } from '../../registry/store.js';
import { testCa } from '../support/records.js';

const operator = { kind: 'operator', id: 'admin' } as const;
const NOW = new Date('2030-01-01T00:00:00Z');
const HOLD_MS = 400;

/** Another process that takes the write lock, says so, writes a device, and commits HOLD_MS later. */
const OTHER_WRITER = `
const Database = require(process.argv[1]);
const db = new Database(process.argv[2]);
db.pragma('busy_timeout = 5000');
db.exec('BEGIN IMMEDIATE');
db.prepare("INSERT INTO devices (id, status, attributes, gateway, gateway_id, created_at, updated_at) VALUES ('other-writer', 'ACTIVE', '{}', 0, NULL, 0, 0)").run();
process.stdout.write('locked\\n');
Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ${HOLD_MS});
db.exec('COMMIT');
db.close();
`;

describe('SQLite registry written by two processes', () => {
  let dir: string;
  let path: string;
  let store: KyselyRegistryStore;
  let registry: Registry;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sqlite-writers-'));
    path = join(dir, 'registry.db');
    store = await openSqliteStore(path);
    registry = new Registry({ store, bus: new InProcessEventBus(), clock: () => NOW });
    await registry.authorities.record(testCa('root'), operator);
    await registry.authorities.record(testCa('default', 'root'), operator);
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('waits for the other writer, then commits its own read-then-write transaction', async () => {
    const other = spawn(process.execPath, ['-e', OTHER_WRITER, fileURLToPath(import.meta.resolve('better-sqlite3')), path], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = once(other, 'exit');
    const [line] = (await once(createInterface({ input: other.stdout }), 'line')) as [string];
    assert.equal(line, 'locked');

    // Reads the rotation table, then writes it: the step that failed with SQLITE_BUSY.
    const slots = await registry.rotation.adoptFirst('default', operator);
    assert.equal(slots.current.caId, 'default');
    assert.deepEqual(await exited, [0, null], 'the other writer committed');
    assert.equal((await registry.rotation.slots())?.current.caId, 'default');
    assert.ok(await store.devices.get('other-writer' as DeviceId), 'what the other process wrote is there too');
  });
});
