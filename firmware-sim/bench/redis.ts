// A Redis server of its own on a free port, for a benchmark or test cluster: no persistence
// (killing it loses its data, as a restart of a cache-only Redis does), bound to loopback.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { freePort } from './ports.js';

export interface RedisServer {
  url: string;
  port: number;
  start(): Promise<void>;
  /** SIGKILL: every connection drops at once, and the data goes with it. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

function pong(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('error', () => resolve(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data.toString().startsWith('+PONG'));
    });
  });
}

/** `args` are further redis-server options, e.g. ['--client-output-buffer-limit', 'pubsub 256mb 128mb 60']. */
export async function startRedis(args: string[] = []): Promise<RedisServer> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const server: RedisServer = {
    url: `redis://127.0.0.1:${port}`,
    port,
    async start() {
      child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', ...args], { stdio: 'ignore' });
      for (const deadline = Date.now() + 5000; !(await pong(port)); await new Promise((resolve) => setTimeout(resolve, 20))) {
        if (Date.now() > deadline) throw new Error(`redis-server did not answer on ${port}`);
      }
    },
    async kill() {
      const running = child;
      child = undefined;
      if (!running || running.exitCode !== null) return;
      const exited = once(running, 'exit');
      running.kill('SIGKILL');
      await exited;
    },
    stop: () => server.kill(),
  };
  await server.start();
  return server;
}
