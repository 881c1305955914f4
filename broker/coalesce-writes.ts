// A subscriber that hears from thousands of devices (a backend reading all telemetry) would
// get one TLS record and one system call per message: every incoming message is handled in
// its own I/O callback, and mqtt-packet uncorks at the end of each. Holding a connection's
// writes until the end of the event loop's turn sends everything written in that turn as one
// record and one write. The delay is at most one turn.
//
// One write function and one flush serve every connection: ten thousand idle devices hold
// no closure of their own for it.
import type { Duplex } from 'node:stream';

const CORKED = Symbol('corked');
type Coalesced = Duplex & { [CORKED]?: boolean };

let corked: Coalesced[] = [];

function flush(): void {
  const streams = corked;
  corked = [];
  for (const stream of streams) {
    stream[CORKED] = false;
    stream.uncork();
  }
}

function coalescedWrite(this: Coalesced, ...args: Parameters<Duplex['write']>): boolean {
  // The flush runs before any setImmediate scheduled after this write (Aedes closes a refused
  // connection from one), so what was written goes out first.
  if (!this[CORKED]) {
    this[CORKED] = true;
    this.cork();
    if (corked.push(this) === 1) setImmediate(flush);
  }
  return (Object.getPrototypeOf(this) as Duplex).write.apply(this, args);
}

export function coalesceWrites(stream: Duplex): void {
  stream.write = coalescedWrite as Duplex['write'];
}
