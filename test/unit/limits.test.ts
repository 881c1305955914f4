import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PacketLengthWatch, PublishPacer } from '../../broker/limits.js';
import { isOwnTopic } from '../../broker/topics.js';
import { packet as rawPacket } from '../support/raw-mqtt.js';

describe('PublishPacer', () => {
  it('lets a burst through, then spaces publishes at the rate', () => {
    const pacer = new PublishPacer({ ratePerSecond: 10, burst: 3 }, 0);
    assert.deepEqual([pacer.take(0), pacer.take(0), pacer.take(0)], [0, 0, 0]);
    assert.equal(pacer.take(0), 100);
    assert.equal(pacer.take(0), 200);
  });

  it('refills with time, never above the burst', () => {
    const pacer = new PublishPacer({ ratePerSecond: 10, burst: 2 }, 0);
    pacer.take(0);
    pacer.take(0);
    assert.equal(pacer.take(100), 0, 'one token back after 100 ms');
    assert.deepEqual([pacer.take(10_000), pacer.take(10_000), pacer.take(10_000)], [0, 0, 100]);
  });
});

/** A packet of the given type byte with a body of `bodyLength` filler bytes. */
const packet = (type: number, bodyLength: number) => rawPacket(type, Buffer.alloc(bodyLength, 7));

describe('PacketLengthWatch', () => {
  it('follows packets of every size up to the limit, whatever the chunking', () => {
    const stream = Buffer.concat([packet(0x10, 12), packet(0x30, 127), packet(0x30, 128), packet(0xc0, 0), packet(0x30, 16_383), packet(0x30, 16_384)]);
    for (const size of [1, 2, 3, 7, 64, 1000, stream.length]) {
      const watch = new PacketLengthWatch(16_384);
      for (let i = 0; i < stream.length; i += size) assert.equal(watch.scan(stream.subarray(i, i + size)), undefined, `chunk size ${size}`);
    }
  });

  it('reports a packet announced above the limit before its body arrives', () => {
    const watch = new PacketLengthWatch(1024);
    assert.equal(watch.scan(packet(0x30, 10)), undefined);
    assert.deepEqual(watch.scan(Buffer.from([0x30, 0x81, 0x08])), { kind: 'too_large', announced: 1025 });
  });

  it('reports a remaining length longer than four bytes as malformed', () => {
    const watch = new PacketLengthWatch(1 << 28);
    assert.deepEqual(watch.scan(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff])), { kind: 'malformed' });
  });
});

describe('isOwnTopic', () => {
  const cases: [string, boolean][] = [
    ['devices/dev-1/telemetry', true],
    ['devices/dev-1/#', true],
    ['devices/dev-1/+/state', true],
    ['devices/dev-1/', false],
    ['devices/dev-1', false],
    ['devices/dev-10/telemetry', false],
    ['devices/+/telemetry', false],
    ['devices/#', false],
    ['#', false],
    ['$SYS/broker', false],
  ];
  for (const [topic, allowed] of cases) {
    it(`${topic} is ${allowed ? '' : 'not '}dev-1's`, () => assert.equal(isOwnTopic('dev-1', topic), allowed));
  }
});
