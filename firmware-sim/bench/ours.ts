// Our service as the benchmark runs it: `fleet serve` as its own process, on free ports,
// found through the public CLI only; in a data directory the caller keeps across restarts,
// or in a fresh one removed on stop.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const FLEET = fileURLToPath(new URL('../../../bin/fleet.js', import.meta.url));

export interface RunningBroker {
  pid: number;
  dataDir: string;
  mqttUrl: string;
  apiUrl: string;
  ca: string;
  token: string;
  stop(): Promise<void>;
}

/** `nodeArgs` go to node itself: `--cpu-prof`, `--heapsnapshot-signal=SIGUSR2` to profile the broker. */
export async function startOurs(args: string[] = [], dataDir?: string, nodeArgs: string[] = []): Promise<RunningBroker> {
  const dir = dataDir ?? (await mkdtemp(join(tmpdir(), 'fleet-bench-')));
  // Default log level: what the service costs as operators run it, its log included.
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, FLEET, 'serve', '--data', dir, '--mqtt-port', '0', '--api-port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const listening = await new Promise<{ mqtt: string; api: string }>((resolve, reject) => {
    // The ports are in the readiness line; the rest of the log is read and dropped.
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const event = JSON.parse(line) as { event?: string; mqtt?: string; api?: string };
        if (event.event === 'listening' && event.mqtt && event.api) resolve({ mqtt: event.mqtt, api: event.api });
      } catch {
        // not a log line
      }
    });
    child.once('exit', (code) => reject(new Error(`fleet serve exited with ${code}`)));
  });
  return {
    pid: child.pid!,
    dataDir: dir,
    mqttUrl: listening.mqtt,
    apiUrl: listening.api,
    ca: await readFile(join(dir, 'pki', 'ca-bundle.pem'), 'utf8'),
    token: (await readFile(join(dir, 'admin.token'), 'utf8')).trim(),
    async stop() {
      child.kill('SIGTERM');
      await once(child, 'exit');
      if (!dataDir) await rm(dir, { recursive: true, force: true });
    },
  };
}
