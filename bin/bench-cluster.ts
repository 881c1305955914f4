// `npm run bench -- cluster [--quick]`: the broker cluster on this machine. For 1, 2 and 3
// `fleet serve` nodes sharing a Redis of the benchmark's own and a fresh PostgreSQL schema:
// mutual-TLS connects per second (the fleet spread over the nodes, as a TCP load balancer
// would), QoS 0 messages per second routed from every device to one backend reader on the
// first node (so most messages cross nodes through Redis), and, from two nodes on,
// revocation acknowledged → session closed when the session is on another node than the API
// call. Wall-clock throughput of the whole machine, clients included: on a small machine the
// nodes, Redis, PostgreSQL and the load generator share its cores.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { ApiClient } from '../firmware-sim/api-client.js';
import { enrollFleet, enrollReader, type BenchDevice } from '../firmware-sim/bench/fleet.js';
import { connectAll, connectDevice, disconnectAll, fanIn, revokeEach, startReading, withoutRevoked, type Connected, type RevocationTimes } from '../firmware-sim/bench/load.js';
import { startOurs, type RunningBroker } from '../firmware-sim/bench/ours.js';
import { startRedis } from '../firmware-sim/bench/redis.js';
import { deviceIds } from '../firmware-sim/run.js';

export interface ClusterSettings {
  devices: number;
  durationMs: number;
  /** Offered QoS 0 messages per second, across the fleet. */
  rate: number;
  revoke: number;
  concurrency: number;
  database: string;
  say: (line: string) => void;
}

export interface ClusterFigures {
  nodes: number;
  /** false: one process with its MQTT state and events in memory, the baseline. */
  redis: boolean;
  connected: number;
  attempted: number;
  connectFailures: Record<string, number>;
  connectsPerSecond: number;
  published: number;
  routed: number;
  messagesPerSecond: number;
  /** Connections Redis accepted during the measurement: a node's connection dropped and made again. */
  redisReconnects: number;
  /** Sessions on another node than the one whose API revoked them. */
  revocation?: RevocationTimes;
}

const QUIET_MS = 3000;

/** A fresh schema in the given database, and the URL that selects it. */
async function freshSchema(database: string): Promise<{ url: string; drop(): Promise<void> }> {
  const schema = `fleet_bench_${Date.now().toString(36)}`;
  const run = async (statement: string) => {
    const client = new pg.Client({ connectionString: database });
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  };
  await run(`CREATE SCHEMA ${schema}`);
  const url = new URL(database);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return { url: url.toString(), drop: () => run(`DROP SCHEMA ${schema} CASCADE`) };
}

/** Connections the Redis server has accepted so far (this query's own included). */
async function redisConnections(url: string): Promise<number> {
  const redis = new Redis(url);
  try {
    return Number(/total_connections_received:(\d+)/.exec(await redis.info('stats'))?.[1] ?? NaN);
  } finally {
    redis.disconnect();
  }
}

/** Limits above the benchmark's load, as in the single-broker benchmark. */
function limits(s: ClusterSettings): string[] {
  const perDevice = Math.ceil((s.rate / s.devices) * 10) + 10;
  return ['--publish-rate', String(perDevice), '--publish-burst', String(perDevice * 2), '--address-connect-rate', '100000', '--address-connect-burst', '100000'];
}

export async function clusterBench(s: ClusterSettings): Promise<ClusterFigures[]> {
  const dataDir = await mkdtemp(join(tmpdir(), 'fleet-bench-cluster-'));
  // Redis drops a subscriber whose backlog passes client-output-buffer-limit pubsub (32 MB
  // hard, 8 MB for 60 s, by default), and what was buffered for it is lost: the node holding
  // the reader falls that far behind under this fan-in. Raised here, as the README advises for
  // a cluster's Redis, so the figure is the cluster's throughput rather than that cliff.
  const redis = await startRedis(['--client-output-buffer-limit', 'pubsub 512mb 256mb 60']);
  const schema = await freshSchema(s.database);
  const node = (i: number, shared = true) => startOurs(['--database', schema.url, ...(shared ? ['--redis', redis.url] : []), '--node-name', `bench-${i}`, ...limits(s)], dataDir);
  try {
    // Enrolled once, through the first node; every run after uses the same fleet.
    const first = await node(1);
    const api = new ApiClient({ baseUrl: first.apiUrl, ca: first.ca, token: first.token });
    const prefix = `cluster-${Date.now().toString(36)}`;
    let pool = await enrollFleet(api, deviceIds(prefix, s.devices), first.ca, 32, (n) => s.say(`  enrolled ${n}/${s.devices}`));
    const reader = await enrollReader(api, `${prefix}-reader`, first.ca);
    await first.stop();

    const figures: ClusterFigures[] = [];
    for (const [count, shared] of [[1, false], [1, true], [2, true], [3, true]] as const) {
      const nodes: RunningBroker[] = [];
      try {
        for (let i = 1; i <= count; i++) nodes.push(await node(i, shared));
        const before = await redisConnections(redis.url);
        const result = await measure(nodes, pool, reader, s);
        result.redisReconnects = (await redisConnections(redis.url)) - before - 1;
        result.redis = shared;
        s.say(`  ${count} node(s)${shared ? '' : ' without Redis'}: ${result.connectsPerSecond.toFixed(0)} connects/s, ${result.messagesPerSecond.toFixed(0)} messages/s${result.revocation ? `, revocation p99 ${result.revocation.ackToCloseMs.p99.toFixed(1)} ms after the acknowledgement` : ''}`);
        figures.push(result);
        // Revocation burns devices.
        pool = withoutRevoked(pool, result.revocation);
      } finally {
        await Promise.all(nodes.map((n) => n.stop()));
      }
    }
    return figures;
  } finally {
    await redis.stop();
    await schema.drop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function measure(nodes: RunningBroker[], devices: BenchDevice[], reader: BenchDevice, s: ClusterSettings): Promise<ClusterFigures> {
  const backend = await connectDevice(reader, nodes[0]!.mqttUrl);
  const reading = await startReading(backend);
  // Device i goes to node i mod N, as a round-robin load balancer would send it.
  const shares = nodes.map((_, n) => devices.filter((_d, i) => i % nodes.length === n));
  const started = performance.now();
  const outcomes = await Promise.all(shares.map((share, n) => connectAll(share, nodes[n]!.mqttUrl, Math.ceil(s.concurrency / nodes.length))));
  const connectSeconds = (performance.now() - started) / 1000;
  const connected = outcomes.flatMap((o) => o.connected);
  const failures: Record<string, number> = {};
  for (const o of outcomes) for (const [reason, n] of Object.entries(o.failures)) failures[reason] = (failures[reason] ?? 0) + n;

  const routingStarted = performance.now();
  // Through Redis, publishers are acknowledged before delivery: what they sent faster than the
  // nodes deliver drains afterwards, with pauses; wait out long ones before counting.
  const telemetry = await fanIn(connected, reading, s.rate, s.durationMs, QUIET_MS);
  const routingSeconds = (performance.now() - routingStarted - QUIET_MS) / 1000;

  let revocation: ClusterFigures['revocation'];
  if (nodes.length > 1) {
    // Sessions held by the other nodes, revoked through the first node's API.
    const victims = outcomes.slice(1).flatMap((o) => o.connected).slice(0, s.revoke);
    const first = nodes[0]!;
    revocation = await revokeEach(new ApiClient({ baseUrl: first.apiUrl, ca: first.ca, token: first.token }), victims);
  }
  await disconnectAll([...connected.filter((c: Connected) => c.closedAt === undefined), backend]);
  return {
    nodes: nodes.length,
    redis: true,
    connected: connected.length,
    attempted: devices.length,
    connectFailures: failures,
    connectsPerSecond: connected.length / connectSeconds,
    published: telemetry.published,
    routed: telemetry.received,
    messagesPerSecond: telemetry.received / routingSeconds,
    redisReconnects: 0,
    revocation,
  };
}

export function clusterTable(figures: ClusterFigures[], s: ClusterSettings): string {
  const f = (n: number | undefined, digits = 0) => (n !== undefined && Number.isFinite(n) ? n.toFixed(digits) : '-');
  return [
    `| nodes | connected | mutual-TLS connects/s | QoS 0 messages/s routed (offered ${s.rate}/s) | revocation on another node: ack → closed p50 / p99 ms | request → closed p99 ms | closed before the ack | Redis reconnects |`,
    '|---|---|---|---|---|---|---|---|',
    ...figures.map((r) => {
      const v = r.revocation;
      return `| ${r.nodes}${r.redis ? '' : ', MQTT state in memory (baseline)'} | ${r.connected}/${r.attempted} | ${f(r.connectsPerSecond)} | ${f(r.messagesPerSecond)} (${r.routed}/${r.published}) | ${v ? `${f(v.ackToCloseMs.p50, 1)} / ${f(v.ackToCloseMs.p99, 1)}` : '-'} | ${v ? f(v.requestToCloseMs.p99, 1) : '-'} | ${v ? `${v.closedBeforeAck}/${v.revoked}` : '-'} | ${r.redis ? r.redisReconnects : '-'} |`;
    }),
  ].join('\n');
}
