import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { RoutingGate, type ProbeTransport } from '../../broker/routing-gate.js';

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

/** A probe path whose echoes the test delivers by hand, on a clock the test moves. */
function harness() {
  let now = 0;
  const sent: number[] = [];
  let echo: (sentAt: number) => void = () => assert.fail('not listening yet');
  let listening!: () => void;
  const transport: ProbeTransport = {
    send: (sentAt) => sent.push(sentAt),
    onEcho: (handler) => {
      echo = handler;
      return new Promise((resolve) => (listening = resolve));
    },
  };
  const events = { holding: [] as number[], released: [] as [number, number][] };
  const gate = new RoutingGate(transport, { intervalMs: 100, holdAfterMs: 1000, probeTimeoutMs: 2000, now: () => now }, {
    holding: (since) => events.holding.push(since),
    released: (heldMs, count) => events.released.push([heldMs, count]),
  });
  const advance = (ms: number) => {
    now += ms;
    mock.timers.tick(ms);
  };
  return { gate, sent, events, advance, echo: (sentAt: number) => echo(sentAt), listen: async () => { listening(); await Promise.resolve(); await Promise.resolve(); } };
}

describe('RoutingGate', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setInterval'] }));
  afterEach(() => mock.timers.reset());

  it('lets publishes through until its probes are subscribed, then sends one probe at a time', async () => {
    const h = harness();
    assert.equal(h.gate.open, true);
    assert.deepEqual(h.sent, []);
    await h.listen();
    assert.deepEqual(h.sent, [0], 'the first probe goes out at once');
    h.advance(300);
    assert.deepEqual(h.sent, [0], 'no second probe while the first is out');
    h.echo(0);
    h.advance(100);
    assert.deepEqual(h.sent, [0, 400]);
    assert.equal(h.gate.delayMs, 300, 'the first probe came back 300 ms late');
    h.gate.close();
  });

  it('holds publishes once no probe has come back for too long, and lets them go, in order, when one does', async () => {
    const h = harness();
    await h.listen();
    h.advance(1000);
    assert.equal(h.gate.open, true, 'at the limit, still open');
    h.advance(100);
    assert.equal(h.gate.open, false);
    assert.deepEqual(h.events.holding, [1100]);
    const order: number[] = [];
    h.gate.admit(() => order.push(1));
    h.gate.admit(() => order.push(2));
    assert.deepEqual(order, [], 'nothing goes ahead while routing is behind');
    assert.equal(h.gate.held, 2);
    assert.equal(h.gate.delayMs, 1100, 'the probe out is 1100 ms overdue');
    h.advance(400);
    h.echo(0);
    assert.deepEqual(h.events.released, [[400, 2]]);
    await nextTurn();
    assert.deepEqual(order, [1, 2]);
    assert.equal(h.gate.held, 0);
    assert.equal(h.gate.open, true);
    let ran = false;
    h.gate.admit(() => (ran = true));
    assert.equal(ran, true, 'an open gate runs at once');
    h.gate.close();
  });

  it('lets held publishes go a slice per turn of the event loop, oldest first, newcomers behind them', async () => {
    const h = harness();
    await h.listen();
    h.advance(1100);
    const order: number[] = [];
    for (let i = 0; i < 600; i++) h.gate.admit(() => order.push(i));
    h.echo(0);
    assert.equal(h.gate.open, false, 'on time again, but 600 are before a newcomer');
    h.gate.admit(() => order.push(600));
    await nextTurn();
    assert.equal(order.length, 256);
    await nextTurn();
    assert.equal(order.length, 512);
    await nextTurn();
    assert.deepEqual(order, Array.from({ length: 601 }, (_, i) => i));
    assert.equal(h.gate.open, true);
    h.gate.close();
  });

  it('stops letting held publishes go when routing falls behind again mid-way', async () => {
    const h = harness();
    await h.listen();
    h.advance(1100);
    let released = 0;
    for (let i = 0; i < 600; i++) h.gate.admit(() => released++);
    h.echo(0);
    await nextTurn();
    assert.equal(released, 256);
    h.advance(1100);
    await nextTurn();
    assert.equal(released, 256, 'behind again: the rest waits');
    h.echo(h.sent.at(-1)!);
    await nextTurn();
    await nextTurn();
    assert.equal(released, 600);
    h.gate.close();
  });

  it('sends a probe again when one is lost, and stays shut until one comes back', async () => {
    const h = harness();
    await h.listen();
    h.advance(2000);
    assert.deepEqual(h.sent, [0], 'not yet taken as lost');
    h.advance(100);
    assert.deepEqual(h.sent, [0, 2100], 'lost after 2000 ms, sent again');
    assert.equal(h.gate.open, false);
    h.echo(2100);
    assert.equal(h.gate.open, true);
    h.gate.close();
  });

  it('lets everything held go when it closes, and holds nothing after', async () => {
    const h = harness();
    await h.listen();
    h.advance(1500);
    let released = 0;
    h.gate.admit(() => released++);
    assert.equal(released, 0);
    h.gate.close();
    assert.equal(released, 1);
    h.advance(5000);
    assert.equal(h.gate.open, true);
    h.gate.admit(() => released++);
    assert.equal(released, 2);
  });
});
