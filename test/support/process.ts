// `fleet` as a real child process, for tests about the process itself: restarts, kill -9,
// the CLI. Ports are picked by the OS (port 0) and read back from the service's log.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { FLUSH_MS as LOG_FLUSH_MS } from '../../bin/log-destination.js';
import type { LogEvent } from './logs.js';

export const FLEET_BIN = fileURLToPath(new URL('../../../bin/fleet.js', import.meta.url));

export interface ServeProcess {
  child: ChildProcess;
  mqttPort: number;
  apiUrl: string;
  /** The lines read so far: a line the service wrote in the last two LOG_FLUSH_MS may not be among them yet. */
  logs: LogEvent[];
  /** Every line the service had written when this was called (its log goes out in blocks, each line within two LOG_FLUSH_MS). */
  logsWritten(): Promise<LogEvent[]>;
  /** Resolves with the exit code, or the signal that ended it. */
  exited: Promise<number | NodeJS.Signals>;
  /** For a failing assertion's message: whether the process still runs, its stderr and its last log lines. */
  diagnosis(lines?: number): string;
  stop(signal?: NodeJS.Signals): Promise<number | NodeJS.Signals>;
}

export async function spawnServe(dataDir: string, options: { nodeArgs?: string[]; args?: string[]; timeoutMs?: number } = {}): Promise<ServeProcess> {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), FLEET_BIN, 'serve', '--data', dataDir, '--mqtt-port', '0', '--api-port', '0', '--log-level', 'debug', ...(options.args ?? [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = once(child, 'exit').then(([code, signal]) => (signal as NodeJS.Signals | null) ?? (code as number));
  const logs: LogEvent[] = [];
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const ready = new Promise<LogEvent>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      let event: LogEvent;
      try {
        event = JSON.parse(line) as LogEvent;
      } catch {
        return;
      }
      logs.push(event);
      if (event.event === 'listening') resolve(event);
    });
    void exited.then((how) => reject(new Error(`fleet serve exited (${how}) before listening: ${stderr}`)));
    setTimeout(() => reject(new Error('fleet serve did not listen in time')), options.timeoutMs ?? 30_000).unref();
  });
  // A service that never became ready is not left running behind the failed test.
  const listening = await ready.catch(async (error: unknown) => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    throw error;
  });
  return {
    child,
    mqttPort: Number(new URL(String(listening.mqtt)).port),
    apiUrl: String(listening.api),
    logs,
    // A line waits at most two flush intervals (bin/log-destination.ts); one more for the pipe.
    logsWritten: () => new Promise((resolve) => setTimeout(() => resolve(logs), 3 * LOG_FLUSH_MS)),
    exited,
    diagnosis(lines = 12) {
      const ended = child.exitCode ?? child.signalCode;
      return [
        ended === null ? `pid ${child.pid} running` : `exited (${ended})`,
        stderr.trim() === '' ? 'stderr empty' : `stderr: ${stderr.trim().slice(-2000)}`,
        ...logs.slice(-lines).map((e) => JSON.stringify(e)),
      ].join('\n');
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
