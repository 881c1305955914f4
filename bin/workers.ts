// `fleet serve --workers N`: one broker process per core on one machine. The primary does
// what must happen once (the data directory, migrations, the registry's initial state), then
// forks N workers that run `fleet serve` with the same arguments. node:cluster hands the
// workers' listening sockets to the primary, so every worker accepts on the same MQTT and
// API ports; the workers share state through Redis exactly as separate nodes do.
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';

/** How many workers `--workers` asks for: a count, or `auto` for one per core. */
export function workerCount(value: string): number | undefined {
  if (value === 'auto') return availableParallelism();
  const n = Number(value);
  return Number.isInteger(n) && n >= 1 && n <= 1024 ? n : undefined;
}

export const isWorker = () => cluster.isWorker;

/** The worker's name: the node name given (or the host and pid) with its worker number. */
export function workerNodeName(base: string | undefined): string | undefined {
  return base && cluster.worker ? `${base}-w${cluster.worker.id}` : undefined;
}

/**
 * Runs the primary until SIGINT or SIGTERM: forks `count` workers, replaces one that dies
 * (after a second, so a worker failing at start does not spin), and on a signal passes it on
 * and waits for every worker to exit. Resolves with the exit code.
 */
export async function runPrimary(count: number, log: (event: Record<string, unknown>) => void): Promise<number> {
  let stopping = false;
  const fork = () => {
    const worker = cluster.fork();
    worker.once('exit', (code, signal) => {
      if (stopping) return;
      log({ event: 'worker_exited', worker: worker.id, pid: worker.process.pid, code, signal });
      setTimeout(() => {
        if (!stopping) fork();
      }, 1000).unref();
    });
    return worker;
  };
  for (let i = 0; i < count; i++) fork();
  log({ event: 'workers_started', workers: count, pid: process.pid });

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  stopping = true;
  const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
  await Promise.all(
    workers.map(
      (worker) =>
        new Promise<void>((resolve) => {
          if (worker.isDead()) return resolve();
          worker.once('exit', () => resolve());
          worker.process.kill(signal);
        }),
    ),
  );
  log({ event: 'workers_stopped' });
  return 0;
}

/** Lets a worker whose service has closed exit: its channel to the primary would keep it alive. */
export function leaveCluster(): void {
  cluster.worker?.disconnect();
}
