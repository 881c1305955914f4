import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RenewalSchedule, renewalTime, type RenewalPolicy, type Validity } from '../../firmware-sim/device/renewal.js';
import { ManualTimers } from '../support/manual-timers.js';

const DAY = 24 * 60 * 60 * 1000;
const policy: RenewalPolicy = { at: 2 / 3, jitter: 0.05, retry: { baseMs: 60_000, capMs: 60 * 60_000 } };
const NO_JITTER = () => 0.5; // 2·0.5 − 1 = 0
const validity = (notBefore: number, days: number): Validity => ({ notBefore, notAfter: notBefore + days * DAY });

describe('renewalTime', () => {
  const v = validity(Date.UTC(2030, 0, 1), 30);

  it('is two thirds into the lifetime without jitter', () => {
    assert.equal(renewalTime(v, v.notBefore, policy, NO_JITTER), v.notBefore + 20 * DAY);
  });

  it('moves by up to ± the jitter fraction of the lifetime', () => {
    assert.equal(renewalTime(v, v.notBefore, policy, () => 0), v.notBefore + 20 * DAY - 1.5 * DAY);
    assert.equal(renewalTime(v, v.notBefore, policy, () => 1), v.notBefore + 20 * DAY + 1.5 * DAY);
    for (let i = 0; i < 1000; i++) {
      const at = renewalTime(v, v.notBefore, policy);
      assert.ok(at >= v.notBefore + 18.5 * DAY && at <= v.notBefore + 21.5 * DAY);
    }
  });

  it('is never before now', () => {
    const late = v.notBefore + 25 * DAY;
    assert.equal(renewalTime(v, late, policy, NO_JITTER), late);
  });
});

describe('RenewalSchedule on a stepped clock', () => {
  function setup(renew: () => Promise<Validity>, random = NO_JITTER) {
    const timers = new ManualTimers();
    const failures: unknown[] = [];
    const schedule = new RenewalSchedule(timers, policy, renew, random, (e) => failures.push(e));
    return { timers, schedule, failures };
  }

  it('fires at two thirds of the lifetime, not a moment before', () => {
    let calls = 0;
    const { timers, schedule } = setup(() => (calls++, Promise.resolve(validity(timers.now(), 30))));
    schedule.schedule(validity(timers.now(), 30));
    assert.equal(schedule.dueAt, timers.now() + 20 * DAY);
    timers.advance(20 * DAY - 1);
    assert.equal(calls, 0);
    timers.advance(1);
    assert.equal(calls, 1);
  });

  it('fires with the jitter drawn from the injected random source', () => {
    const { timers, schedule } = setup(() => Promise.resolve(validity(timers.now(), 30)), () => 0.9);
    schedule.schedule(validity(timers.now(), 30));
    // 20 days + (2·0.9 − 1)·0.05·30 days = 21.2 days
    assert.equal(schedule.dueAt, timers.now() + 21.2 * DAY);
  });

  it('fires at once when the renewal point has already passed', () => {
    let calls = 0;
    const { timers, schedule } = setup(() => (calls++, Promise.resolve(validity(timers.now(), 30))));
    schedule.schedule(validity(timers.now() - 25 * DAY, 30));
    assert.equal(schedule.dueAt, timers.now());
    timers.advance(0);
    assert.equal(calls, 1);
  });

  it('reschedules from the new certificate after a renewal', async () => {
    let calls = 0;
    const { timers, schedule } = setup(() => (calls++, Promise.resolve(validity(timers.now(), 30))));
    schedule.schedule(validity(timers.now(), 30));
    timers.advance(20 * DAY);
    await timers.settle();
    const renewedAt = timers.now();
    assert.equal(schedule.dueAt, renewedAt + 20 * DAY);
    timers.advance(20 * DAY);
    assert.equal(calls, 2);
  });

  it('retries a failed renewal with backoff, the old certificate still good meanwhile', async () => {
    let fail = true;
    let calls = 0;
    const { timers, schedule, failures } = setup(() => {
      calls++;
      return fail ? Promise.reject(new Error('service unavailable')) : Promise.resolve(validity(timers.now(), 30));
    });
    schedule.schedule(validity(timers.now(), 30));
    timers.advance(20 * DAY);
    await timers.settle();
    assert.equal(failures.length, 1);
    const retryAt = schedule.dueAt!;
    assert.ok(retryAt > timers.now() && retryAt <= timers.now() + 60_000, 'first retry within the base window');
    fail = false;
    timers.advance(retryAt - timers.now());
    await timers.settle();
    assert.equal(calls, 2);
    assert.equal(schedule.dueAt, timers.now() + 20 * DAY, 'back on the normal schedule');
  });

  it('renews at once when told to, then goes on from the new certificate', async () => {
    let calls = 0;
    const { timers, schedule } = setup(() => (calls++, Promise.resolve(validity(timers.now(), 30))));
    schedule.schedule(validity(timers.now(), 30));
    timers.advance(DAY);
    schedule.now();
    timers.advance(0);
    await timers.settle();
    assert.equal(calls, 1);
    assert.equal(schedule.dueAt, timers.now() + 20 * DAY);
  });

  it('schedules nothing more once stopped, even after a renewal that was under way', async () => {
    let finish!: (v: Validity) => void;
    const { timers, schedule } = setup(() => new Promise<Validity>((resolve) => (finish = resolve)));
    schedule.schedule(validity(timers.now() - 25 * DAY, 30));
    timers.advance(0);
    assert.equal(schedule.running, true);
    schedule.stop();
    finish(validity(timers.now(), 30));
    await timers.settle();
    assert.equal(schedule.dueAt, undefined);
    assert.equal(timers.next, undefined);
  });
});
