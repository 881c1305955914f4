// A subscriber that hears from thousands of devices (a backend reading all telemetry) would
// get one TLS record and one system call per message: every incoming message is handled in
// its own I/O callback, and mqtt-packet uncorks at the end of each. Holding a connection's
// writes until the end of the event loop's turn sends everything written in that turn as one
// record and one write. The delay is at most one turn.
import type { Duplex } from 'node:stream';

export function coalesceWrites(stream: Duplex): void {
  let corked = false;
  const uncork = () => {
    corked = false;
    stream.uncork();
  };
  const write = stream.write.bind(stream);
  stream.write = ((...args: Parameters<Duplex['write']>): boolean => {
    // Uncork runs before any setImmediate scheduled after this write (Aedes closes a refused
    // connection from one), so what was written is flushed first.
    if (!corked) {
      corked = true;
      stream.cork();
      setImmediate(uncork);
    }
    return write(...args);
  }) as Duplex['write'];
}
