// The patches npm ci applies to Aedes and its in-memory persistence (broker/patches/): the
// persistence answers "is anything queued for this client?" at once, which lets a CONNECT skip
// the queue's streams; one without the answer (Redis, in a cluster) keeps the streams. And a
// subscriber whose retained messages cannot be read loses its connection, not the process.
// And mqtt-packet, which both the broker and the simulator parse and write with: the same
// packets, with less work per packet and nothing kept between packets.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { Aedes } from 'aedes';
import persistenceRedis from 'aedes-persistence-redis';
import { Redis } from 'ioredis';
import { MqttClient } from 'mqtt';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { codecBench, mqttPacketPatched } from '../../bin/bench-codec.js';
import { startRedis } from '../support/cluster.js';
import { duplexPair } from '../support/memory-broker.js';

interface QueueQuestions {
  outgoingIsEmpty?: (client: { id: string }) => boolean;
  outgoingEnqueue(sub: { clientId: string; topic: string; qos: number }, packet: object): Promise<void>;
  outgoingClearMessageId(client: { id: string }, packet: { messageId: number }): Promise<unknown>;
  outgoingUpdate(client: { id: string }, packet: object): Promise<unknown>;
}

describe('patched Aedes persistence', () => {
  it('says whether anything waits for a client, from the first queued message to the last one cleared', async () => {
    const broker = await Aedes.createBroker();
    try {
      const { persistence } = broker as unknown as { persistence: QueueQuestions };
      const client = { id: 'valve-1' };
      assert.equal(typeof persistence.outgoingIsEmpty, 'function', 'npm ci applied broker/patches/aedes-persistence+11.0.0.patch');
      assert.equal(persistence.outgoingIsEmpty!(client), true);
      const packet = { cmd: 'publish', topic: 'devices/valve-1/commands/set', payload: Buffer.from('on'), qos: 1, retain: false, dup: false, brokerId: broker.id, brokerCounter: 1, messageId: 7 };
      await persistence.outgoingEnqueue({ clientId: client.id, topic: packet.topic, qos: 1 }, packet);
      assert.equal(persistence.outgoingIsEmpty!(client), false);
      assert.equal(persistence.outgoingIsEmpty!({ id: 'someone-else' }), true);
      const sent = { ...packet };
      await persistence.outgoingUpdate(client, sent);
      await persistence.outgoingClearMessageId(client, sent);
      assert.equal(persistence.outgoingIsEmpty!(client), true);
    } finally {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    }
  });

  it('leaves the question unanswered for a persistence that cannot answer it (Redis), so its queue is streamed', () => {
    // Built without connecting: the question is on the wrapper, decided in its constructor.
    const persistence = persistenceRedis({ conn: { on: () => undefined } as never }) as unknown as QueueQuestions;
    assert.equal(persistence.outgoingIsEmpty, undefined);
  });

  it('closes a subscriber whose retained messages Redis cannot give, and the broker goes on', { timeout: 30_000 }, async () => {
    const redis = await startRedis();
    // One retry: the failure arrives in a second rather than after ioredis' twenty.
    const conn = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    conn.on('error', () => undefined);
    const broker = await Aedes.createBroker({ persistence: persistenceRedis({ conn }) as never });
    const clientErrors: Error[] = [];
    broker.on('clientError', (_client, error) => void clientErrors.push(error));
    try {
      const next = (client: MqttClient, event: 'connect' | 'close') => new Promise<void>((resolve) => client.once(event, () => resolve()));
      const connectClient = (clientId: string) => {
        const [brokerSide, clientSide] = duplexPair();
        broker.handle(brokerSide);
        const client = new MqttClient(() => clientSide, { clientId, protocolVersion: 4, reconnectPeriod: 0 });
        client.on('error', () => undefined);
        return client;
      };
      const subscriber = connectClient('valve-1');
      await next(subscriber, 'connect');
      await redis.kill();
      const lost = next(subscriber, 'close');
      subscriber.subscribe('devices/valve-1/commands/#', { qos: 1 });
      await lost;
      const why = clientErrors.find((error) => error.message === 'retained messages could not be read');
      assert.ok(why, `the broker reported why: ${clientErrors.map((e) => e.message).join(', ')}`);
      assert.equal((why.cause as Error).name, 'MaxRetriesPerRequestError');
      // Still serving: a client connects and is answered.
      await redis.start();
      const another = connectClient('valve-2');
      await next(another, 'connect');
      another.end(true);
    } finally {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      conn.disconnect();
      await redis.stop();
    }
  });
});

describe('patched mqtt-packet', () => {
  const packets: Packet[] = [
    { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'meter-9', keepalive: 30 },
    { cmd: 'publish', topic: 'devices/meter-9/telemetry', payload: Buffer.from('{"kWh":3}'), qos: 1, messageId: 42, retain: false, dup: false },
    { cmd: 'subscribe', messageId: 43, subscriptions: [{ topic: 'devices/meter-9/commands/#', qos: 1 }] },
    { cmd: 'pingreq' },
    { cmd: 'publish', topic: 'devices/meter-9/telemetry', payload: Buffer.alloc(300, 7), qos: 0, retain: true, dup: false },
  ];
  const wire = Buffer.concat(packets.map((p) => mqttPacket.generate(p)));
  const parse = (chunks: Buffer[]) => {
    const parser = mqttPacket.parser();
    const seen: Packet[] = [];
    parser.on('packet', (p: Packet) => seen.push(p));
    for (const chunk of chunks) parser.parse(chunk);
    return seen.map((p) => mqttPacket.generate(p).toString('hex'));
  };

  it('parses the same packets, whole or a byte at a time', () => {
    assert.ok(mqttPacketPatched(), 'npm ci applied broker/patches/mqtt-packet+9.0.2.patch');
    const expected = packets.map((p) => mqttPacket.generate(p).toString('hex'));
    assert.deepEqual(parse([wire]), expected);
    assert.deepEqual(parse([...wire].map((byte) => Buffer.of(byte))), expected);
  });

  it('holds no packet between packets, so an idle device keeps no young object alive', () => {
    const parser = mqttPacket.parser() as unknown as { packet: unknown; parse(b: Buffer): number; on(e: 'packet', f: (p: Packet) => void): void };
    const seen: Packet[] = [];
    parser.on('packet', (p) => seen.push(p));
    assert.equal(parser.packet, null, 'none before the first byte either');
    parser.parse(mqttPacket.generate(packets[1]!));
    assert.equal(seen.length, 1);
    assert.equal(parser.packet, null);
    const half = mqttPacket.generate(packets[1]!);
    parser.parse(half.subarray(0, 5));
    assert.notEqual(parser.packet, null, 'a packet begun is held until it is complete');
    parser.parse(half.subarray(5));
    assert.deepEqual([seen.length, parser.packet], [2, null]);
  });

  it('still refuses a packet with reserved header flags set', () => {
    const parser = mqttPacket.parser();
    const errors: Error[] = [];
    parser.on('error', (e: Error) => errors.push(e));
    parser.parse(Buffer.from([0xc1, 0x00])); // PINGREQ with a flag bit set
    assert.equal(errors.length, 1);
  });

  it('is what the codec benchmark times, and the benchmark says the patch is applied', () => {
    const figures = codecBench(1000, 2);
    assert.equal(figures.patched, true);
    assert.ok(figures.parseNs > 0 && figures.writeNs > 0);
  });

  it('traces when DEBUG names it at start, and is silent otherwise', async () => {
    const run = (env: NodeJS.ProcessEnv) =>
      promisify(execFile)(process.execPath, ['-e', "const m = require('mqtt-packet'); m.parser().parse(m.generate({ cmd: 'pingreq' }))"], {
        cwd: fileURLToPath(new URL('../../..', import.meta.url)),
        env: { ...process.env, DEBUG: '', ...env },
      });
    assert.match((await run({ DEBUG: 'mqtt-packet:parser' })).stderr, /mqtt-packet:parser/);
    assert.equal((await run({})).stderr, '');
  });
});
