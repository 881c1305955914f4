// A cluster as tests run it: a Redis server of its own on a free port (so a test may restart
// it without touching anyone else's), a PostgreSQL schema of its own reached through a TCP
// proxy the test can cut, one data directory (the PKI every node shares), and N real
// `fleet serve` processes.
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net, { type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort } from '../../firmware-sim/bench/ports.js';
import { startRedis, type RedisServer } from '../../firmware-sim/bench/redis.js';
import { enrollDevice, type EnrolledDevice } from './fleet.js';
import { httpsRequest, type HttpRequest, type HttpResult } from './https.js';
import { spawnServe, type ServeProcess } from './process.js';
import { postgresSchema } from './stores.js';

export { startRedis, type RedisServer };

/** A TCP proxy in front of a server, which a test can cut (every connection dropped, new ones refused) and restore. */
export interface TcpProxy {
  port: number;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function tcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let open = true;
  const server = net.createServer((client) => {
    if (!open) return client.destroy();
    const upstream = net.connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    cut() {
      open = false;
      for (const s of sockets) s.destroy();
    },
    restore() {
      open = true;
    },
    async close() {
      open = false;
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

export interface TestCluster {
  dir: string;
  ca: string;
  token: string;
  redis: RedisServer;
  /** The proxy between the nodes and PostgreSQL. */
  database: TcpProxy;
  nodes: ServeProcess[];
  /** Starts one more node (with the cluster's arguments plus extra ones). */
  addNode(extra?: string[]): Promise<ServeProcess>;
  api(node: ServeProcess, path: string, request?: HttpRequest): Promise<HttpResult>;
  enroll(id: string): Promise<EnrolledDevice>;
  close(): Promise<void>;
}

export interface ClusterOptions {
  nodes: number;
  /** Extra `fleet serve` arguments for every node. */
  args?: string[];
}

export async function startCluster(options: ClusterOptions): Promise<TestCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'fleet-cluster-'));
  const redis = await startRedis();
  const schema = await postgresSchema();
  const pgUrl = new URL(schema.url);
  const database = await tcpProxy({ host: pgUrl.hostname, port: Number(pgUrl.port || 5432) });
  pgUrl.port = String(database.port);
  let counter = 0;
  const nodes: ServeProcess[] = [];
  const addNode = async (extra: string[] = []) => {
    const name = `node-${++counter}`;
    const node = await spawnServe(dir, {
      // Tests reconnect the same device at machine speed; throttling is tested where it is the point.
      args: ['--database', pgUrl.toString(), '--redis', redis.url, '--node-name', name, '--connect-rate', '1000', '--connect-burst', '1000', ...(options.args ?? []), ...extra],
    });
    nodes.push(node);
    return node;
  };
  // The first node creates the data directory and the schema; the others find them.
  await addNode();
  await Promise.all(Array.from({ length: options.nodes - 1 }, () => addNode()));
  const ca = await readFile(join(dir, 'pki', 'ca-bundle.pem'), 'utf8');
  const token = (await readFile(join(dir, 'admin.token'), 'utf8')).trim();
  return {
    dir,
    ca,
    token,
    redis,
    database,
    nodes,
    addNode,
    api: (node, path, request = {}) => httpsRequest(`${node.apiUrl}${path}`, ca, { token, ...request }),
    enroll: (id) => enrollDevice(nodes[0]!.apiUrl, ca, token, id),
    async close() {
      await Promise.all(nodes.map((n) => n.stop()));
      await database.close();
      await redis.stop();
      await schema.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export const HAPROXY_CONFIG = fileURLToPath(new URL('../../../docs/cluster/haproxy.cfg', import.meta.url));

export interface Haproxy {
  mqttPort: number;
  apiPort: number;
  stop(): Promise<void>;
}

/**
 * HAProxy with the repository's configuration, its ports moved: the fronts to free ports, and
 * server node-N to the N-th node given. Checked with `haproxy -c` first.
 */
export async function startHaproxy(dataDir: string, nodes: ServeProcess[]): Promise<Haproxy> {
  const [mqttPort, apiPort] = [await freePort(), await freePort()];
  let config = (await readFile(HAPROXY_CONFIG, 'utf8')).replace('bind 127.0.0.1:8883', `bind 127.0.0.1:${mqttPort}`).replace('bind 127.0.0.1:8443', `bind 127.0.0.1:${apiPort}`);
  nodes.forEach((node, i) => {
    const api = new URL(node.apiUrl).port;
    config = config
      .replace(new RegExp(`server node-${i + 1} 127\\.0\\.0\\.1:1883${i + 1} check port 1844${i + 1}`), `server node-${i + 1} 127.0.0.1:${node.mqttPort} check port ${api}`)
      .replace(new RegExp(`server node-${i + 1} 127\\.0\\.0\\.1:1844${i + 1} check`), `server node-${i + 1} 127.0.0.1:${api} check`);
  });
  if (/server node-\d 127\.0\.0\.1:18(83|44)\d/.test(config)) throw new Error('docs/cluster/haproxy.cfg no longer has the server lines this test rewrites');
  const file = join(dataDir, 'haproxy.cfg');
  await writeFile(file, config);
  const env = { ...process.env, FLEET_DATA: dataDir };
  await promisify(execFile)('haproxy', ['-c', '-q', '-f', file], { env });
  const child = spawn('haproxy', ['-db', '-f', file], { env, stdio: 'ignore' });
  return {
    mqttPort,
    apiPort,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}
