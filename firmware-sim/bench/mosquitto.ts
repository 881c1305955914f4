// Mosquitto as the benchmark's reference: an instance of its own on a free port, mutual TLS
// with the same PKI, the certificate's CN as the username, and a per-device ACL pattern —
// what an operator would configure to get the same guarantees from it.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { writeServerPki, type ServerPki } from './server-pki.js';

export interface RunningMosquitto {
  pid: number;
  mqttUrl: string;
  stop(): Promise<void>;
}

async function accepting(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function startMosquitto(pki: ServerPki, options: { readers: string[] }): Promise<RunningMosquitto> {
  const dir = await mkdtemp(join(tmpdir(), 'mosquitto-bench-'));
  const port = await freePort();
  await writeServerPki(dir, pki);
  // Each device reads and writes under devices/<its CN>/; backend readers read all telemetry.
  await writeFile(join(dir, 'acl'), ['pattern readwrite devices/%u/#', ...options.readers.flatMap((r) => [`user ${r}`, 'topic read devices/+/telemetry'])].join('\n') + '\n');
  await writeFile(
    join(dir, 'mosquitto.conf'),
    [
      // Run as whoever runs the benchmark: started as root, Mosquitto would otherwise switch
      // to its own user, who cannot read this private directory.
      `user ${userInfo().username}`,
      'per_listener_settings false',
      'persistence false',
      // Its default log types, to a file: a line per connection, as our service logs one.
      `log_dest file ${join(dir, 'mosquitto.log')}`,
      'log_type error',
      'log_type warning',
      'log_type notice',
      'log_type information',
      `acl_file ${join(dir, 'acl')}`,
      'allow_anonymous false',
      `listener ${port} 127.0.0.1`,
      `cafile ${join(dir, 'ca.pem')}`,
      `certfile ${join(dir, 'server.pem')}`,
      `keyfile ${join(dir, 'server.key')}`,
      'require_certificate true',
      'use_identity_as_username true',
      'max_connections -1',
      '',
    ].join('\n'),
  );
  const child = spawn('mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: ['ignore', 'ignore', 'inherit'] });
  await accepting(port, 5000);
  return {
    pid: child.pid!,
    mqttUrl: `mqtts://127.0.0.1:${port}`,
    async stop() {
      child.kill('SIGTERM');
      await once(child, 'exit');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
