// Three `fleet serve` nodes sharing a real Redis (MQTT state, registry events) and a real
// PostgreSQL (the registry), with real mutual-TLS MQTT clients connecting to whichever node a
// test picks, as a TCP load balancer would send them. Faults are real too: kill -9 of a node,
// Redis killed and restarted, PostgreSQL cut off by a proxy.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { IClientOptions, MqttClient } from 'mqtt';
import { ClaimSession, CREATE, errorCode, SENSOR_TEMPLATE } from '../support/claims.js';
import type { EnrolledDevice } from '../support/fleet.js';
import { startCluster, startHaproxy, tcpProxy, type TestCluster } from '../support/cluster.js';
import { httpsRequest } from '../support/https.js';
import { closed, connect, end, mqttOptions, tryConnect, type Identity } from '../support/mqtt.js';
import type { ServeProcess } from '../support/process.js';
import { eventually } from '../support/wait.js';

const CACHE_TTL_S = 2;

describe('a cluster of three nodes', { timeout: 120_000 }, () => {
  let cluster: TestCluster;
  let reader: EnrolledDevice;
  let commander: EnrolledDevice;
  const clients: MqttClient[] = [];

  const on = (node: ServeProcess, identity: EnrolledDevice, extra = {}) => mqttOptions(node.mqttPort, cluster.ca, identity, extra);
  const open = async (node: ServeProcess, identity: EnrolledDevice, extra = {}) => {
    const client = await connect(on(node, identity, extra));
    clients.push(client);
    return client;
  };
  const logged = (node: ServeProcess, event: string, match: Record<string, unknown>) =>
    eventually(() => node.logs.some((e) => e.event === event && Object.entries(match).every(([k, v]) => e[k] === v)), 5000, `${event} ${JSON.stringify(match)} on ${node.logs[0]?.node as string}`);
  const nextMessage = (client: MqttClient, topic: string) =>
    new Promise<string>((resolve) => {
      const listener = (t: string, payload: Buffer) => {
        if (t !== topic) return;
        client.off('message', listener);
        resolve(payload.toString());
      };
      client.on('message', listener);
    });

  /** A counter's value on one node, from its /metrics (0 before the first increment). */
  const counter = async (node: ServeProcess, name: string) => {
    const match = new RegExp(`^${name}\\{[^}]*\\} (\\d+)$`, 'm').exec((await cluster.api(node, '/metrics')).body.toString());
    return match ? Number(match[1]) : 0;
  };
  const takeovers = (nodes: ServeProcess[]) => Promise.all(nodes.map((n) => counter(n, 'fleet_takeovers_total')));

  /** A device publishing telemetry on node 1 and the backend reading it on node 2: one message crosses. */
  const telemetryAcross = async (id: string, qos: 0 | 1) => {
    const [n1, n2] = cluster.nodes as [ServeProcess, ServeProcess];
    const device = await cluster.enroll(id);
    const backend = await open(n2, reader);
    await backend.subscribeAsync('devices/+/telemetry', { qos });
    const publisher = await open(n1, device);
    const arrived = nextMessage(backend, `devices/${id}/telemetry`);
    await publisher.publishAsync(`devices/${id}/telemetry`, 'from node 1', { qos });
    assert.equal(await arrived, 'from node 1');
    return { backend, publisher };
  };

  before(async () => {
    cluster = await startCluster({ nodes: 3, args: ['--cache-ttl', String(CACHE_TTL_S)] });
    // A backend service: reads every device's telemetry and sends devices commands.
    const group = await cluster.api(cluster.nodes[0]!, '/v1/groups', { body: { id: 'backend', policy: { publish: ['devices/+/commands/#'], subscribe: ['devices/+/telemetry'] } } });
    assert.equal(group.status, 201);
    reader = await cluster.enroll('reader');
    commander = await cluster.enroll('commander');
    for (const id of ['reader', 'commander']) assert.equal((await cluster.api(cluster.nodes[0]!, `/v1/groups/backend/members/${id}`, { method: 'PUT' })).status, 200);
  });
  after(async () => {
    for (const client of clients) client.end(true);
    await cluster.close();
  });

  it('names each node in its health, readiness, logs and metrics', async () => {
    const names = new Set<unknown>();
    for (const node of cluster.nodes) {
      const name = node.logs.find((e) => e.event === 'listening')?.node as string;
      names.add(name);
      assert.equal((await cluster.api(node, '/healthz')).json.node, name);
      const ready = await cluster.api(node, '/readyz');
      assert.equal(ready.status, 200);
      assert.deepEqual(ready.json, { status: 'ready', node: name });
      assert.equal(node.logs.find((e) => e.event === 'listening')?.bus, 'redis');
      const metrics = (await cluster.api(node, '/metrics')).body.toString();
      assert.match(metrics, new RegExp(`^fleet_connected_devices\\{node="${name}"\\} `, 'm'));
    }
    assert.deepEqual([...names].sort(), ['node-1', 'node-2', 'node-3']);
  });

  it('delivers a message published on one node to subscribers on every other node', async () => {
    const n3 = cluster.nodes[2]!;
    const { publisher, backend: onTwo } = await telemetryAcross('sensor-1', 1);

    const commanded = nextMessage(publisher, 'devices/sensor-1/commands/reboot');
    await publisher.subscribeAsync('devices/sensor-1/commands/#', { qos: 1 });
    const backend = await open(n3, commander);
    await backend.publishAsync('devices/sensor-1/commands/reboot', 'now', { qos: 1 });
    assert.equal(await commanded, 'now');
    await end(backend);
    await end(publisher);
    await end(onTwo);
  });

  it('serves devices through HAProxy with docs/cluster/haproxy.cfg, TLS passed through, and steers them off a node that dies', async () => {
    const [n1, n2] = cluster.nodes as [ServeProcess, ServeProcess];
    const extra = await cluster.addNode();
    const proxy = await startHaproxy(cluster.dir, [n1, n2, extra]);
    try {
      await eventually(async () => (await httpsRequest(`https://127.0.0.1:${proxy.apiPort}/readyz`, cluster.ca).catch(() => undefined))?.status === 200, 10_000, 'the API through HAProxy');
      // Connect devices through the proxy until one lands on the node about to die.
      let onExtra: { device: EnrolledDevice; client: MqttClient } | undefined;
      for (let i = 0; i < 6 && !onExtra; i++) {
        const device = await cluster.enroll(`roamer-${i}`);
        const client = await connect(mqttOptions(proxy.mqttPort, cluster.ca, device));
        clients.push(client);
        await eventually(() => cluster.nodes.some((n) => n.logs.some((e) => e.event === 'admitted' && e.clientId === device.id)), 5000, `${device.id} admitted somewhere`);
        if (extra.logs.some((e) => e.event === 'admitted' && e.clientId === device.id)) onExtra = { device, client };
      }
      assert.ok(onExtra, 'a device was sent to the third node');
      const gone = closed(onExtra.client);
      await extra.stop('SIGKILL');
      await gone;
      // The device dials the same address again and is admitted by a node that is alive.
      const again = await connect(mqttOptions(proxy.mqttPort, cluster.ca, onExtra.device));
      clients.push(again);
      await eventually(() => [n1, n2].some((n) => n.logs.filter((e) => e.event === 'admitted' && e.clientId === onExtra.device.id).length > 0), 5000, 'admitted by a live node');
      await end(again);
    } finally {
      await proxy.stop();
    }
  });

  it('lets a device id be connected once in the whole cluster: a second connection elsewhere takes over, counted once', async () => {
    const device = await cluster.enroll('twin-1');
    const [n1, n2, n3] = cluster.nodes as [ServeProcess, ServeProcess, ServeProcess];
    const before = await takeovers([n1, n2, n3]);
    const first = await open(n1, device);
    const firstClosed = closed(first);
    const second = await open(n2, device);
    await firstClosed;
    // The node that lost the session counts it; the newcomer's node saw no earlier session.
    await logged(n1, 'takeover', { deviceId: 'twin-1' });
    const counted = (await takeovers([n1, n2, n3])).map((n, i) => n - before[i]!);
    assert.deepEqual(counted, [1, 0, 0]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(second.connected, true, 'the newcomer keeps its session');
    const view = await cluster.api(n1, '/v1/devices/twin-1');
    assert.equal(view.json.connected, true, 'connected, as node 2 says');
    await end(second);
    await eventually(async () => (await cluster.api(n1, '/v1/devices/twin-1')).json.connected === false, 3000, 'disconnected everywhere');
  });

  it('limits a claim batch’s requests across the cluster, not per node', async () => {
    const [n1, n2] = cluster.nodes as [ServeProcess, ServeProcess];
    // Two requests in all, and no token back during the test.
    const created = await cluster.api(n1, '/v1/claim-batches', { body: { name: 'line-c', template: SENSOR_TEMPLATE, rateLimit: { perSecond: 0.001, burst: 2 } } });
    assert.equal(created.status, 201);
    const claim = { batch: 'line-c', keyPem: created.json.key as string, certPem: created.json.certificate as string };
    const via = (node: ServeProcess) => ({ connect: (identity: Partial<Identity>, extra: IClientOptions = {}) => connect(mqttOptions(node.mqttPort, cluster.ca, identity, extra)) });
    const sessions = [await ClaimSession.open(via(n1), claim, 'a'), await ClaimSession.open(via(n1), claim, 'b'), await ClaimSession.open(via(n2), claim, 'c')];
    const replies = [];
    for (const session of sessions) replies.push(await session.request(CREATE, 'not json'));
    assert.deepEqual(replies.map(errorCode), ['claim_request_invalid', 'claim_request_invalid', 'claim_rate_limited']);
    await Promise.all(sessions.map((s) => s.end()));
  });

  it('bans a device that keeps reconnecting on every node, and lifts the ban everywhere', async () => {
    const [n1] = cluster.nodes as [ServeProcess];
    // A node with the default-like CONNECT allowance (the others are unthrottled for the tests).
    const strict = await cluster.addNode(['--connect-rate', '1', '--connect-burst', '1']);
    try {
      const device = await cluster.enroll('hammer-1');
      const outcomes: number[] = [];
      while (!strict.logs.some((e) => e.event === 'refusal' && e.clientId === 'hammer-1' && e.reason === 'banned')) {
        assert.ok(outcomes.length < 50, 'banned after its throttled CONNECTs');
        const attempt = await tryConnect(on(strict, device));
        outcomes.push(attempt.returnCode);
        attempt.client.end(true);
      }
      // Node 1 would admit it (no throttle to speak of there), but the ban holds there too.
      await eventually(
        async () => {
          const attempt = await tryConnect(on(n1, device));
          attempt.client.end(true);
          return attempt.returnCode === 3;
        },
        5000,
        'banned on node 1 too',
      );
      await logged(n1, 'refusal', { clientId: 'hammer-1', reason: 'banned' });
      assert.ok((await cluster.api(n1, '/v1/broker/bans')).json.bans.some((b: { clientId: string }) => b.clientId === 'hammer-1'));

      // Lifted on the node that banned it, lifted on node 1.
      assert.equal((await cluster.api(strict, '/v1/broker/bans/hammer-1', { method: 'DELETE' })).json.lifted, 1);
      await eventually(async () => !(await cluster.api(n1, '/v1/broker/bans')).json.bans.some((b: { clientId: string }) => b.clientId === 'hammer-1'), 5000, 'lifted on node 1');
      await end(await connect(on(n1, device)));
    } finally {
      await strict.stop();
    }
  });

  it('closes a revoked device’s session on the node that holds it before the revocation is acknowledged', async () => {
    const device = await cluster.enroll('lost-1');
    const [n1, n2, n3] = cluster.nodes as [ServeProcess, ServeProcess, ServeProcess];
    const client = await open(n2, device);
    const gone = closed(client);
    assert.equal((await cluster.api(n1, '/v1/devices/lost-1')).json.connected, true);

    const revoked = await cluster.api(n1, '/v1/devices/lost-1/revoke', { body: { reason: 'keyCompromise' } });
    assert.equal(revoked.status, 200);
    // Node 2 confirmed it had acted before node 1 answered.
    assert.equal(revoked.json.connected, false);
    await gone;
    await logged(n2, 'session_terminated', { deviceId: 'lost-1', reason: 'certificate_revoked' });

    for (const node of [n1, n2, n3]) {
      const retry = await tryConnect(on(node, device));
      assert.equal(retry.returnCode, 5, 'refused on every node');
      retry.client.end(true);
      await logged(node, 'refusal', { clientId: 'lost-1', reason: 'certificate_revoked' });
    }
  });

  it('announces a revocation made on a node cut off alone once it is back, to the nodes that never lost the bus', async () => {
    const [, n2] = cluster.nodes as [ServeProcess, ServeProcess];
    // This node reaches Redis through a link the test can cut; the others keep their bus.
    const link = await tcpProxy({ host: '127.0.0.1', port: cluster.redis.port });
    const isolated = await cluster.addNode(['--redis', `redis://127.0.0.1:${link.port}`]);
    try {
      const device = await cluster.enroll('far-1');
      const client = await open(n2, device);
      await client.subscribeAsync('devices/far-1/commands/#', { qos: 1 });
      const gone = closed(client);

      link.cut();
      await eventually(async () => (await cluster.api(isolated, '/readyz')).json.error?.code === 'bus_disconnected', 5000, 'the node knows it is cut off');
      const revoked = await cluster.api(isolated, '/v1/devices/far-1/revoke', { body: { reason: 'keyCompromise' } });
      assert.equal(revoked.status, 503);
      assert.equal(revoked.json.error.code, 'event_bus_unavailable');
      // Node 2 never lost the bus, so it has nothing to catch up on: only the announcement tells it.
      assert.equal((await cluster.api(n2, '/readyz')).status, 200);

      link.restore();
      await logged(isolated, 'bus_events_announced', { batches: 1 });
      await gone;
      await logged(n2, 'session_terminated', { deviceId: 'far-1', reason: 'certificate_revoked' });
    } finally {
      link.restore();
      await isolated.stop();
      await link.close();
    }
  });

  it('stops cleanly on SIGTERM with devices connected, subscribed and publishing', async () => {
    const node = await cluster.addNode();
    const devices = await Promise.all(Array.from({ length: 20 }, (_, i) => cluster.enroll(`leaver-${i}`)));
    const connected = await Promise.all(devices.map(async (device, i) => {
      const client = await connect(on(node, device, { reconnectPeriod: 0 }));
      await client.subscribeAsync(`devices/leaver-${i}/commands/#`, { qos: 1 });
      return client;
    }));
    const gone = Promise.all(connected.map(closed));
    // Telemetry in flight while the node closes: publishes to Redis cut off by the shutdown.
    const sending = connected.map((client, i) => setInterval(() => client.publish(`devices/leaver-${i}/telemetry`, 'reading'), 2));
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(await node.stop('SIGTERM'), 0);
    for (const timer of sending) clearInterval(timer);
    await gone;
    for (const client of connected) client.end(true);
  });

  it('keeps QoS 1 messages for a device whose node is killed, and delivers them on the node it moves to', async () => {
    const device = await cluster.enroll('mover-1');
    const [n1, n2] = cluster.nodes as [ServeProcess, ServeProcess];
    const victim = await cluster.addNode();
    const persistent = { clean: false, clientId: 'mover-1' };
    const first = await connect(on(victim, device, persistent));
    await first.subscribeAsync('devices/mover-1/commands/#', { qos: 1 });
    const gone = closed(first);
    assert.equal(await victim.stop('SIGKILL'), 'SIGKILL');
    await gone;
    first.end(true);

    // Sent while the device is nowhere: queued in Redis.
    const backend = await open(n1, reader);
    for (let i = 1; i <= 5; i++) await backend.publishAsync(`devices/mover-1/commands/c${i}`, `m${i}`, { qos: 1 });

    const received: string[] = [];
    const moved = await connect(on(n2, device, { ...persistent, reconnectPeriod: 0 }));
    clients.push(moved);
    moved.on('message', (_topic, payload) => received.push(payload.toString()));
    await eventually(() => received.length >= 5, 5000, 'the queued messages arrive');
    assert.deepEqual(received, ['m1', 'm2', 'm3', 'm4', 'm5']);
    // And it is subscribed still, on its new node, without subscribing again.
    await backend.publishAsync('devices/mover-1/commands/c6', 'm6', { qos: 1 });
    await eventually(() => received.length === 6, 5000, 'a new message arrives');
    await end(moved);
    await end(backend);
  });

  it('uses cached verdicts only within their TTL while PostgreSQL is unreachable, and refuses unknown certificates', async () => {
    const [n1] = cluster.nodes as [ServeProcess];
    const known = await cluster.enroll('known-1');
    const stranger = await cluster.enroll('stranger-1');
    await end(await connect(on(n1, known))); // its verdict is now cached on node 1

    cluster.database.cut();
    try {
      const cached = await tryConnect(on(n1, known));
      assert.equal(cached.returnCode, 0, 'admitted on its cached verdict');
      await end(cached.client);

      const unknown = await tryConnect(on(n1, stranger));
      assert.equal(unknown.returnCode, 3, 'server unavailable');
      unknown.client.end(true);
      await logged(n1, 'refusal', { clientId: 'stranger-1', reason: 'registry_unavailable' });
      const ready = await cluster.api(n1, '/readyz');
      assert.equal(ready.status, 503);
      assert.equal(ready.json.error.code, 'registry_unreachable');

      await new Promise((resolve) => setTimeout(resolve, CACHE_TTL_S * 1000 + 200));
      const expired = await tryConnect(on(n1, known));
      assert.equal(expired.returnCode, 3, 'refused once its verdict expired');
      expired.client.end(true);
      await logged(n1, 'refusal', { clientId: 'known-1', reason: 'registry_unavailable' });
    } finally {
      cluster.database.restore();
    }
    await eventually(async () => (await cluster.api(n1, '/readyz')).status === 200, 10_000, 'node 1 ready again');
    const back = await tryConnect(on(n1, stranger));
    assert.equal(back.returnCode, 0);
    await end(back.client);
  });

  it('admits nothing it should not while Redis restarts, closes sessions revoked meanwhile, catches up when it is back, and delivers again', async () => {
    const [n1, n2] = cluster.nodes as [ServeProcess, ServeProcess];
    const doomed = await cluster.enroll('doomed-1');
    const bystander = await cluster.enroll('bystander-1');
    const { publisher, backend } = await telemetryAcross('sensor-2', 0);
    // Connected to node 2, so node 2 holds a verdict for it that the outage will make stale.
    const victim = await open(n2, doomed);
    // A SUBACK: node 2 has finished setting the session up (in Redis too) before Redis dies.
    await victim.subscribeAsync('devices/doomed-1/commands/#', { qos: 1 });
    const victimClosed = closed(victim);

    let during: Promise<unknown> | undefined;
    let acknowledged = false;
    await cluster.redis.kill();
    try {
      await eventually(async () => (await cluster.api(n2, '/readyz')).json.error?.code === 'bus_disconnected', 5000, 'node 2 knows it is cut off');
      // Revoked while the bus is down: durable in PostgreSQL, but not announced, so not acknowledged.
      const revoked = await cluster.api(n1, '/v1/devices/doomed-1/revoke', { body: { reason: 'keyCompromise' } });
      assert.equal(revoked.status, 503);
      assert.equal(revoked.json.error.code, 'event_bus_unavailable');
      // Node 2 missed it; it re-checks its live sessions against the registry while cut off,
      // and closes the revoked one before the bus is back.
      await logged(n2, 'session_terminated', { deviceId: 'doomed-1', reason: 'certificate_revoked' });
      await victimClosed;
      // And it admits nobody while it is unsure: neither the revoked device nor a good one.
      for (const identity of [doomed, bystander]) {
        const again = await tryConnect(on(n2, identity));
        assert.equal(again.returnCode, 3, `${identity.id} refused while cut off (${again.error?.message ?? 'a CONNACK'}); node 2: ${n2.diagnosis()}`);
        again.client.end(true);
        await logged(n2, 'refusal', { clientId: identity.id, reason: 'registry_unavailable' });
      }
      // Node 1's routing probes cannot come back through Redis: it holds a device's publish
      // (no PUBACK, nothing more read from the device) instead of taking it on.
      during = publisher.publishAsync('devices/sensor-2/telemetry', 'during', { qos: 1 }).then(() => (acknowledged = true));
      await logged(n1, 'routing_backpressure', {});
      await eventually(async () => (await counter(n1, 'fleet_publishes_held')) === 1, 5000, 'node 1 holds the publish');
      assert.equal(acknowledged, false, 'not acknowledged while it cannot be routed');
    } finally {
      await cluster.redis.start();
    }
    // Once its probes come back, the held publish goes ahead and is acknowledged.
    assert.ok(during, 'published while Redis was away');
    await during;
    await logged(n1, 'routing_caught_up', { released: 1 });
    await eventually(async () => (await cluster.api(n2, '/readyz')).status === 200, 10_000, 'node 2 ready again');
    // Node 1 kept the change the bus could not take and announced it when the bus came back.
    await logged(n1, 'bus_events_announced', { batches: 1 });
    // Repeating the revocation announces it again; now it is acknowledged.
    assert.equal((await cluster.api(n1, '/v1/devices/doomed-1/revoke', { method: 'POST' })).status, 200);
    const back = await tryConnect(on(n2, bystander));
    assert.equal(back.returnCode, 0, 'caught up: good devices are admitted again');
    await end(back.client);

    await eventually(
      async () => {
        const arrived = Promise.race([nextMessage(backend, 'devices/sensor-2/telemetry'), new Promise((resolve) => setTimeout(resolve, 300, undefined))]);
        await publisher.publishAsync('devices/sensor-2/telemetry', 'after', { qos: 0 });
        return (await arrived) === 'after';
      },
      10_000,
      'delivery across nodes resumes',
    );
    await end(publisher);
    await end(backend);
  });
});
