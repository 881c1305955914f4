// A process's own CPU time and memory, read from /proc: the broker's cost is measured where
// it is spent, not guessed from the client side.
import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

export interface ProcessSample {
  /** utime + stime, in milliseconds. */
  cpuMs: number;
  rssKiB: number;
}

export function sampleProcess(pid: number): ProcessSample {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
  const rss = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuMs: (ticks * 1000) / TICKS_PER_SECOND, rssKiB: Number(rss?.[1] ?? NaN) };
}

/** CPU and memory used by `pid` while `work` runs. */
export async function measure<T>(pid: number, work: () => Promise<T>): Promise<{ result: T; cpuMs: number; rssDeltaKiB: number; rssAfterKiB: number }> {
  const before = sampleProcess(pid);
  const result = await work();
  const after = sampleProcess(pid);
  return { result, cpuMs: after.cpuMs - before.cpuMs, rssDeltaKiB: after.rssKiB - before.rssKiB, rssAfterKiB: after.rssKiB };
}

/**
 * The least resident memory seen over `windowMs`. A garbage-collected broker keeps garbage
 * until its collector runs and hands memory back some seconds after a burst (V8's memory
 * reducer); what an idle broker holds is the low point, not a reading taken mid-burst.
 */
export async function settledRssKiB(pid: number, windowMs: number): Promise<number> {
  let least = sampleProcess(pid).rssKiB;
  for (let waited = 0; waited < windowMs; waited += 500) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    least = Math.min(least, sampleProcess(pid).rssKiB);
  }
  return least;
}
