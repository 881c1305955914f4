// The Redis event bus between two nodes, on a Redis server of the test's own: an event is
// acknowledged once the other node has handled it (or the wait ran out), a question is
// answered by every other node, and publishing while Redis is away fails with a typed error
// and keeps the change to announce once the bus is back.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import type { RegistryEvent } from '../../registry/events.js';
import { BusUnavailableError, NodeNameInUseError, RedisEventBus } from '../../registry/redis-bus.js';
import { startRedis, type RedisServer } from '../support/cluster.js';
import { LogCapture } from '../support/logs.js';
import { eventually } from '../support/wait.js';

const event = (deviceId: string): RegistryEvent => ({ type: 'device.status', deviceId: deviceId as never, status: 'DISABLED', at: new Date().toISOString() });

describe('RedisEventBus', { timeout: 30_000 }, () => {
  let redis: RedisServer;
  let a: RedisEventBus;
  let b: RedisEventBus;
  const logs = new LogCapture();
  // A node that misses three of its own heartbeats counts itself cut off. At 100 ms a stall
  // of 300 ms (a loaded machine running the whole suite) would do that mid-test, and a
  // question asked then gets no answer; 250 ms still shows the outage well within its waits.
  const bus = (node: string, confirmTimeoutMs = 1000) => new RedisEventBus({ url: redis.url, node, heartbeatMs: 250, confirmTimeoutMs, prefix: 'test' }, pino({ level: 'debug' }, logs));
  const bothOnTheBus = () => eventually(() => a.state.caughtUp && b.state.caughtUp, 5000, 'both nodes on the bus');

  before(async () => {
    redis = await startRedis();
    a = bus('a');
    b = bus('b');
    await Promise.all([a.start(), b.start()]);
  });
  after(async () => {
    await Promise.all([a.close(), b.close()]);
    await redis.stop();
  });

  it('acknowledges an event after this node and the other one have handled it', async () => {
    const handled: string[] = [];
    const offA = a.subscribe((e) => void handled.push(`a:${(e as { deviceId: string }).deviceId}`));
    const offB = b.subscribe(async (e) => {
      await new Promise((resolve) => setTimeout(resolve, 50));
      handled.push(`b:${(e as { deviceId: string }).deviceId}`);
    });
    await a.publish([event('d1')]);
    assert.deepEqual(handled, ['a:d1', 'b:d1']);
    offA();
    offB();
  });

  it('stops waiting for a node that does not confirm in time, and says so', async () => {
    const off = b.subscribe(() => new Promise((resolve) => setTimeout(resolve, 3000)));
    const started = performance.now();
    await a.publish([event('d2')]);
    const waited = performance.now() - started;
    assert.ok(waited >= 950 && waited < 2900, `waited ${waited} ms`);
    await logs.waitFor('bus_confirm_timeout', { expected: 1 });
    off();
  });

  it('refuses to start a second node of the same name', async () => {
    const twin = bus('a');
    await assert.rejects(twin.start(), NodeNameInUseError);
    await twin.close();
  });

  it('asks every other node a question', async () => {
    b.answer('connected', (id) => id === 'here');
    await bothOnTheBus();
    assert.deepEqual(await a.ask('connected', 'here'), [true]);
    assert.deepEqual(await a.ask('connected', 'elsewhere'), [false]);
  });

  it('fails a publish while Redis is away, reports the loss, and catches up when it is back', async () => {
    let restored = 0;
    b.onRestored(() => {
      restored++;
      return Promise.resolve();
    });
    const heardByB: string[] = [];
    const off = b.subscribe((e) => void heardByB.push((e as { deviceId: string }).deviceId));
    // A node that is not back on the bus yet would miss the announcement (and re-read the
    // registry itself when it is back): hold a's catch-up until b is listening again.
    a.onRestored(() => eventually(() => b.state.connected, 10_000, 'b back on the bus'));
    await redis.kill();
    try {
      await eventually(() => !a.state.connected && !b.state.connected, 2000, 'both cut off');
      await assert.rejects(a.publish([event('d3')]), BusUnavailableError);
      assert.equal(a.state.unannounced, 1, 'the change the bus could not take is kept');
    } finally {
      await redis.start();
    }
    await eventually(() => a.state.caughtUp && b.state.caughtUp, 10_000, 'both caught up');
    assert.equal(restored, 1);
    // The node that made the change announces it once the bus is back, before it counts as caught up.
    assert.deepEqual(heardByB, ['d3']);
    assert.equal(a.state.unannounced, 0);
    await logs.waitFor('bus_events_announced', { batches: 1 });
    off();
  });
});
