// Where the service's log goes by default: standard output, in blocks. A CONNECT storm logs a
// line per device; written one by one, each line is a write(2) of its own, which cost about
// 45 µs of broker CPU per connect here, more than the broker's whole admission. Lines are
// gathered up to a block and written together; sonic-boom's periodic flush writes whatever is
// gathered every FLUSH_MS (a flush that finds a write still going leaves it to the next), so
// an operator watching the log sees each line within two of them. On exit pino writes out
// what is left; only a SIGKILL can lose the last lines.
import pino from 'pino';

const BLOCK_BYTES = 4096;
/** How often what is gathered is written: a line waits at most two of these. */
export const FLUSH_MS = 100;

export function bufferedStdout(): ReturnType<typeof pino.destination> {
  return pino.destination({ dest: 1, sync: false, minLength: BLOCK_BYTES, periodicFlush: FLUSH_MS });
}
