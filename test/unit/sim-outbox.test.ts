import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeliveryLedger, Outbox } from '../../firmware-sim/device/outbox.js';

describe('Outbox', () => {
  it('numbers readings from 1 and holds them until acknowledged', () => {
    const outbox = new Outbox();
    assert.deepEqual([outbox.add(10), outbox.add(20), outbox.add(30)], [1, 2, 3]);
    assert.equal(outbox.ack(2), true);
    assert.equal(outbox.ack(2), false, 'a second PUBACK for the same reading changes nothing');
    assert.deepEqual([...outbox.pending()], [[1, 10], [3, 30]]);
    assert.equal(outbox.size, 2);
    assert.equal(outbox.last, 3);
  });

  it('gives QoS 0 readings numbers without holding them', () => {
    const outbox = new Outbox();
    outbox.add(1);
    assert.equal(outbox.skip(), 2);
    assert.equal(outbox.size, 1);
    assert.equal(outbox.last, 2);
  });

  it('hands the pending readings back oldest first for re-sending', () => {
    const outbox = new Outbox();
    for (let t = 0; t < 5; t++) outbox.add(t);
    outbox.ack(1);
    outbox.ack(4);
    assert.deepEqual([...outbox.pending()].map(([seq]) => seq), [2, 3, 5]);
  });
});

describe('DeliveryLedger', () => {
  it('counts each (device, sequence) once and the repeats as duplicates', () => {
    const ledger = new DeliveryLedger();
    assert.equal(ledger.record('a', 1), true);
    assert.equal(ledger.record('a', 2), true);
    assert.equal(ledger.record('a', 2), false);
    assert.equal(ledger.record('b', 2), true, 'the same number from another device is another reading');
    assert.deepEqual(ledger.of('a'), { received: 2, duplicates: 1 });
    assert.deepEqual(ledger.totals, { received: 3, duplicates: 1 });
  });

  it('takes readings out of order, and knows a late duplicate below the gap', () => {
    const ledger = new DeliveryLedger();
    for (const seq of [3, 1, 5, 2]) assert.equal(ledger.record('a', seq), true);
    assert.equal(ledger.record('a', 3), false);
    assert.equal(ledger.record('a', 1), false);
    assert.deepEqual(ledger.missing('a', 6), [4, 6]);
    assert.equal(ledger.record('a', 4), true);
    assert.deepEqual(ledger.missing('a', 6), [6]);
    assert.equal(ledger.has('a', 5), true);
    assert.deepEqual(ledger.of('a'), { received: 5, duplicates: 2 });
  });

  it('calls everything missing for a device never heard from', () => {
    assert.deepEqual(new DeliveryLedger().missing('silent', 3), [1, 2, 3]);
  });

  it('finds exactly the readings that never arrived among many', () => {
    const ledger = new DeliveryLedger();
    const lost = new Set([17, 500, 999]);
    for (let seq = 1000; seq >= 1; seq--) if (!lost.has(seq)) ledger.record('a', seq);
    assert.deepEqual(ledger.missing('a', 1000), [17, 500, 999]);
  });
});
