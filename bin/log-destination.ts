// Where the service's log goes by default: standard output, in blocks. A CONNECT storm logs a
// line per device; written one by one, each line is a write(2) of its own, which cost about
// 45 µs of broker CPU per connect here, more than the broker's whole admission. Lines are
// gathered up to a block and written together, and whatever is gathered is written within
// FLUSH_MS, so an operator watching the log sees each line at once, in human terms. On exit
// pino writes out what is left; only a SIGKILL can lose the last FLUSH_MS of lines.
import pino from 'pino';

const BLOCK_BYTES = 4096;
/** The longest a line waits before it is written. */
export const FLUSH_MS = 100;

export function bufferedStdout(): ReturnType<typeof pino.destination> {
  const destination = pino.destination({ dest: 1, sync: false, minLength: BLOCK_BYTES });
  // sonic-boom's own periodicFlush writes on every tick, an empty write when nothing waits;
  // this one only when a line has come since the last.
  let waiting = false;
  const write = destination.write.bind(destination);
  destination.write = (line: string) => {
    waiting = true;
    return write(line);
  };
  setInterval(() => {
    if (!waiting) return;
    waiting = false;
    try {
      destination.flush();
    } catch {
      // closed (the service has stopped): nothing more will be written
    }
  }, FLUSH_MS).unref();
  return destination;
}
