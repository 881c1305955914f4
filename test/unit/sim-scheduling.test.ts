import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BoundedGate } from '../../firmware-sim/gate.js';
import { LatencyHistogram } from '../../firmware-sim/histogram.js';
import { TelemetryTicker } from '../../firmware-sim/ticker.js';
import { TimerHeap, TimerQueue } from '../../firmware-sim/timers.js';

describe('TimerHeap', () => {
  it('hands out due tasks by time, and in scheduling order at equal times', () => {
    const heap = new TimerHeap();
    const ran: string[] = [];
    for (const [at, name] of [[30, 'c'], [10, 'a'], [20, 'b1'], [20, 'b2'], [50, 'e']] as const) heap.push(at, () => ran.push(name));
    for (const task of heap.takeDue(25)) task();
    assert.deepEqual(ran, ['a', 'b1', 'b2']);
    assert.equal(heap.peek(), 30);
  });

  it('skips cancelled tasks', () => {
    const heap = new TimerHeap();
    const ran: number[] = [];
    const first = heap.push(1, () => ran.push(1));
    heap.push(2, () => ran.push(2));
    heap.cancel(first);
    assert.equal(heap.peek(), 2);
    for (const task of heap.takeDue(10)) task();
    assert.deepEqual(ran, [2]);
  });

  it('keeps order over many random entries', () => {
    const heap = new TimerHeap();
    const times = Array.from({ length: 500 }, () => Math.floor(Math.random() * 1000));
    const ran: number[] = [];
    for (const t of times) heap.push(t, () => ran.push(t));
    for (const task of heap.takeDue(1000)) task();
    assert.deepEqual(ran, [...times].sort((a, b) => a - b));
  });
});

describe('TimerQueue', () => {
  it('runs tasks on one node timer, in due order, including tasks they schedule', async () => {
    const queue = new TimerQueue();
    const ran: string[] = [];
    const now = queue.now();
    // Gaps far beyond timer jitter on a loaded machine: 'late' is due 290 ms after 'chained'.
    queue.at(now + 300, () => ran.push('late'));
    queue.at(now + 10, () => {
      ran.push('early');
      queue.at(queue.now() + 5, () => ran.push('chained'));
    });
    const cancelled = queue.at(now + 20, () => ran.push('cancelled'));
    queue.cancel(cancelled);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(ran, ['early', 'chained', 'late']);
    queue.stop();
  });

  it('waits for a due time beyond what setTimeout takes at once (about 24.8 days)', async () => {
    const queue = new TimerQueue();
    let ran = false;
    queue.at(queue.now() + 30 * 24 * 3600_000, () => (ran = true));
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(ran, false);
    queue.stop();
  });

  it('runs nothing after stop', async () => {
    const queue = new TimerQueue();
    let ran = false;
    queue.at(queue.now() + 5, () => (ran = true));
    queue.stop();
    queue.at(queue.now(), () => (ran = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(ran, false);
  });
});

describe('TelemetryTicker', () => {
  it('gives every device its rate, the turns spread evenly round robin', () => {
    let now = 0;
    const counts = [0, 0, 0, 0];
    const devices = counts.map((_, i) => ({ publishReading: () => counts[i]!++ }));
    const ticker = new TelemetryTicker(devices, 2, { now: () => now });
    ticker.start();
    ticker.stop();
    now = 125; // 4 devices × 2/s = one turn every 125 ms
    ticker.tick();
    assert.deepEqual(counts, [1, 0, 0, 0]);
    now = 1000;
    ticker.tick();
    assert.deepEqual(counts, [2, 2, 2, 2]);
    now = 10_000;
    ticker.tick();
    assert.deepEqual(counts, [20, 20, 20, 20]);
  });
});

describe('BoundedGate', () => {
  it('dials at most `limit` at once and the next one as a slot frees', () => {
    const gate = new BoundedGate(2);
    const dialled: number[] = [];
    const dialers = [0, 1, 2, 3].map((i) => ({ wantsDial: true, dial: () => dialled.push(i) }));
    for (const d of dialers) gate.enter(d);
    assert.deepEqual(dialled, [0, 1]);
    assert.equal(gate.waiting, 2);
    gate.leave();
    assert.deepEqual(dialled, [0, 1, 2]);
  });

  it('skips a device that no longer wants its turn', () => {
    const gate = new BoundedGate(1);
    const dialled: string[] = [];
    gate.enter({ wantsDial: true, dial: () => dialled.push('a') });
    gate.enter({ wantsDial: false, dial: () => dialled.push('stopped meanwhile') });
    gate.enter({ wantsDial: true, dial: () => dialled.push('c') });
    gate.leave();
    assert.deepEqual(dialled, ['a', 'c']);
    assert.equal(gate.inFlight, 1);
  });
});

describe('LatencyHistogram', () => {
  it('reads percentiles back within half a bucket (about 4.5 %)', () => {
    const histogram = new LatencyHistogram();
    for (let ms = 1; ms <= 1000; ms++) histogram.record(ms);
    const s = histogram.summary();
    assert.equal(s.count, 1000);
    assert.equal(s.min, 1);
    assert.equal(s.max, 1000);
    for (const [got, want] of [[s.p50, 500], [s.p90, 900], [s.p99, 990]] as const) assert.ok(Math.abs(got - want) / want < 0.05, `${got} vs ${want}`);
    assert.ok(Math.abs(s.mean - 500.5) < 1e-9, 'the mean is exact');
  });

  it('merges buckets for charts and covers every sample', () => {
    const histogram = new LatencyHistogram();
    for (const ms of [0.5, 2, 2, 40, 3000]) histogram.record(ms);
    const buckets = histogram.buckets(4);
    assert.equal(buckets.reduce((n, b) => n + b.count, 0), 5);
    for (let i = 1; i < buckets.length; i++) assert.equal(buckets[i]!.from, buckets[i - 1]!.to, 'contiguous');
    assert.ok(buckets[0]!.from <= 0.5 && buckets.at(-1)!.to > 3000);
  });

  it('has no percentiles without samples', () => {
    assert.ok(Number.isNaN(new LatencyHistogram().summary().p50));
  });
});
