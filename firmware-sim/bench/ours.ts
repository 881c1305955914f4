// Our service as the benchmark runs it: `fleet serve` as its own process, on free ports,
// found through the public CLI only; in a data directory the caller keeps across restarts,
// or in a fresh one removed on stop.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const FIRST_REFUSALS = 20;

const FLEET = fileURLToPath(new URL('../../../bin/fleet.js', import.meta.url));

export interface RunningBroker {
  pid: number;
  dataDir: string;
  mqttUrl: string;
  apiUrl: string;
  ca: string;
  token: string;
  /**
   * The service's refusal events so far, counted by reason code (docs/reasons.md): a device
   * refused under the benchmark's load is a finding, and its reason is the first thing to know.
   */
  readonly refusals: Record<string, number>;
  /** The first refusal events themselves (at most FIRST_REFUSALS), with the facts the service logged. */
  readonly firstRefusals: Record<string, unknown>[];
  stop(): Promise<void>;
}

export interface OursOptions {
  /** A file the service's whole log (stdout, JSON lines) is written to, to read a refusal's facts afterwards. */
  logFile?: string;
}

/** `nodeArgs` go to node itself: `--cpu-prof`, `--heapsnapshot-signal=SIGUSR2` to profile the broker. */
export async function startOurs(args: string[] = [], dataDir?: string, nodeArgs: string[] = [], options: OursOptions = {}): Promise<RunningBroker> {
  const dir = dataDir ?? (await mkdtemp(join(tmpdir(), 'fleet-bench-')));
  // Default log level: what the service costs as operators run it, its log included.
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, FLEET, 'serve', '--data', dir, '--mqtt-port', '0', '--api-port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const log = options.logFile === undefined ? undefined : createWriteStream(options.logFile, { flags: 'a' });
  if (log) child.stdout!.pipe(log);
  const refusals: Record<string, number> = {};
  const firstRefusals: Record<string, unknown>[] = [];
  const listening = await new Promise<{ mqtt: string; api: string }>((resolve, reject) => {
    // The ports are in the readiness line; of the rest only refusals are kept, counted by reason.
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!line.includes('"event":"refusal"') && !line.includes('"event":"listening"')) return;
      try {
        const event = JSON.parse(line) as { event?: string; mqtt?: string; api?: string; reason?: string };
        if (event.event === 'refusal') {
          refusals[event.reason ?? 'unknown'] = (refusals[event.reason ?? 'unknown'] ?? 0) + 1;
          if (firstRefusals.length < FIRST_REFUSALS) firstRefusals.push(event);
        } else if (event.event === 'listening' && event.mqtt && event.api) resolve({ mqtt: event.mqtt, api: event.api });
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
    refusals,
    firstRefusals,
    async stop() {
      child.kill('SIGTERM');
      await once(child, 'exit');
      if (log) await new Promise((resolve) => log.end(resolve));
      if (!dataDir) await rm(dir, { recursive: true, force: true });
    },
  };
}
