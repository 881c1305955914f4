// The reference servers of `npm run bench -- floor` (floor-server.ts), started as processes
// of their own on free ports, with the benchmark's PKI.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { writeServerPki, type ServerPki } from './server-pki.js';

export type FloorKind = 'node-tls' | 'aedes';

const FLOOR_SERVER = fileURLToPath(new URL('./floor-server.js', import.meta.url));

export interface RunningFloor {
  pid: number;
  mqttUrl: string;
  stop(): Promise<void>;
}

export async function startFloorServer(kind: FloorKind, pki: ServerPki): Promise<RunningFloor> {
  const dir = await mkdtemp(join(tmpdir(), 'fleet-floor-'));
  await writeServerPki(dir, pki);
  const child = spawn(process.execPath, [FLOOR_SERVER, kind, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(child, 'exit');
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', (line) => resolve((JSON.parse(line) as { port: number }).port));
    void exited.then(([code]) => reject(new Error(`floor server ${kind} exited with ${String(code)}`)));
  });
  return {
    pid: child.pid!,
    mqttUrl: `mqtts://127.0.0.1:${port}`,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
