// A QoS0 flood during which the subscribers drop. With Aedes' default bounded mqemitter
// queue this kills the broker process: when a subscriber goes, the queued messages nobody
// listens to any more are drained by synchronous recursion until the stack overflows.
//
// The broker runs as a real `fleet serve` process, and "stays up" means that process
// survives. Its V8 stack is made smaller than the default so that the overflow, if the
// queue can build at all, happens with a flood this machine produces in a second or two,
// rather than only under production-sized load.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { startRedis, type RedisServer } from '../support/cluster.js';
import { enrollDevice } from '../support/fleet.js';
import { connect, end, mqttOptions } from '../support/mqtt.js';
import { spawnServe, type ServeProcess } from '../support/process.js';
import { publishPacket, rawConnect, subscribePacket } from '../support/raw-mqtt.js';

const DEVICES = 8;
const BATCH = 2000;
const STACK_KB = 200;

/** Writes QoS0 publishes as fast as the socket takes them, until it closes. */
function flood(socket: TLSSocket, topic: string): void {
  const batch = Buffer.concat(Array.from({ length: BATCH }, () => publishPacket(topic, 'x')));
  const pump = () => {
    while (!socket.destroyed && socket.write(batch));
  };
  socket.on('drain', pump);
  socket.on('error', () => undefined);
  pump();
}

// Both emitters: the in-memory one of a single process, and Redis (mqemitter-redis) of a cluster node.
for (const mode of ['in memory', 'on Redis'] as const) describe(`QoS0 flood with subscribers dropping, MQTT state ${mode}`, { timeout: 120_000 }, () => {
  let dir: string;
  let serve: ServeProcess;
  let redis: RedisServer | undefined;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-flood-'));
    redis = mode === 'on Redis' ? await startRedis() : undefined;
    // Publish limits out of the way: with them a device is paced long before it floods.
    const args = ['--publish-rate', '1000000000', '--publish-burst', '1000000000', ...(redis ? ['--redis', redis.url] : [])];
    serve = await spawnServe(dir, { nodeArgs: [`--stack-size=${STACK_KB}`], args });
  });
  after(async () => {
    await serve.stop();
    await redis?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps the broker process up and serving', async () => {
    const ca = await readFile(join(dir, 'pki', 'ca-bundle.pem'), 'utf8');
    const token = (await readFile(join(dir, 'admin.token'), 'utf8')).trim();
    const devices = await Promise.all(Array.from({ length: DEVICES }, (_, i) => enrollDevice(serve.apiUrl, ca, token, `flooder-${i}`)));
    const sockets: TLSSocket[] = [];
    for (const device of devices) {
      // Each device subscribes to its own topic and then floods it without ever reading:
      // its deliveries back up, and with them the broker's in-flight messages.
      const socket = await rawConnect(serve.mqttPort, ca, device);
      socket.write(subscribePacket(1, `devices/${device.id}/#`));
      await once(socket, 'data'); // SUBACK
      socket.pause();
      sockets.push(socket);
    }
    // Everyone connected first: a CONNECT waiting behind a flood would only slow the test down.
    sockets.forEach((socket, i) => flood(socket, `devices/${devices[i]!.id}/flood`));
    await new Promise((resolve) => setTimeout(resolve, 2000));
    for (const socket of sockets) socket.destroy(); // the subscribers drop mid-flood
    await new Promise((resolve) => setTimeout(resolve, 1500));

    assert.equal(serve.child.exitCode, null, 'the broker process is still running');
    const probe = await enrollDevice(serve.apiUrl, ca, token, 'after-flood');
    const client = await connect(mqttOptions(serve.mqttPort, ca, probe));
    await client.subscribeAsync('devices/after-flood/ping', { qos: 1 });
    const echo = new Promise<[string, Buffer]>((resolve) => client.once('message', (topic, payload) => resolve([topic, payload])));
    await client.publishAsync('devices/after-flood/ping', 'pong', { qos: 1 });
    const [topic, payload] = await echo;
    assert.equal(topic, 'devices/after-flood/ping');
    assert.equal(payload.toString(), 'pong');
    await end(client);
  });
});
