// Flow control for a cluster node's message routing. Through Redis, a device's PUBLISH is
// acknowledged once Redis has taken it, before any node has delivered it: a node that takes
// in more than it can deliver piles the difference up in Redis's buffer for its subscriber
// connection, and its deliveries fall further behind for as long as the load lasts (seen in
// `npm run bench -- cluster`: one node offered 20,000 messages/s delivered almost none of
// them in time, with 70 MB waiting in Redis for it).
//
// The gate measures how late routing is by sending itself a probe through the same path the
// messages take (publish to Redis, back through this node's subscription) and holds device
// publishes while the last probe is too long overdue. A held publish is one whose
// authorization has not answered yet, so Aedes reads nothing more from that device: the
// backlog stays in the devices' TCP windows, where it costs the node nothing, instead of in
// Redis. The probe also stops coming back when this node's event loop is too busy to read
// its subscription, so the same gate holds publishes on an overloaded node.

export interface ProbeTransport {
  /** Sends a probe stamped with `sentAt` along the routing path. */
  send(sentAt: number): void;
  /** Calls `handler` with the stamp of each probe that comes back; resolves once listening. */
  onEcho(handler: (sentAt: number) => void): Promise<void>;
}

export interface RoutingGateOptions {
  /** How often a probe is sent, one in flight at a time. */
  intervalMs: number;
  /** Device publishes are held once no probe has come back for this long. */
  holdAfterMs: number;
  /** A probe not back after this long is taken as lost (Redis reconnecting) and sent again. */
  probeTimeoutMs: number;
  /** Monotonic milliseconds. */
  now: () => number;
}

export const DEFAULT_ROUTING_GATE_OPTIONS: Omit<RoutingGateOptions, 'now'> = Object.freeze({ intervalMs: 100, holdAfterMs: 1000, probeTimeoutMs: 2000 });

/** Held publishes let go per turn of the event loop once routing is back on time. */
const RELEASE_SLICE = 256;

export interface RoutingGateEvents {
  /** The gate started holding publishes: `sinceEchoMs` without a probe back. */
  holding(sinceEchoMs: number): void;
  /** Routing is on time again after `heldMs`; `waiting` held publishes now go, a slice at a time. */
  released(heldMs: number, waiting: number): void;
}

export class RoutingGate {
  readonly #options: RoutingGateOptions;
  readonly #transport: ProbeTransport;
  readonly #events: Partial<RoutingGateEvents>;
  #timer: NodeJS.Timeout | undefined;
  /** Undefined until the probes' subscription is in place: open until then. */
  #lastEchoAt: number | undefined;
  #lastDelayMs = 0;
  #inFlightSince: number | undefined;
  #heldSince: number | undefined;
  /** Held publishes, oldest first, from #head on. */
  #waiting: (() => void)[] = [];
  #head = 0;
  #draining = false;
  #closed = false;

  constructor(transport: ProbeTransport, options: RoutingGateOptions, events: Partial<RoutingGateEvents> = {}) {
    this.#options = options;
    this.#transport = transport;
    this.#events = events;
    void transport.onEcho((sentAt) => this.#echoed(sentAt)).then(() => {
      if (this.#closed) return;
      this.#lastEchoAt = options.now();
      this.#timer = setInterval(() => this.#tick(), options.intervalMs);
      this.#timer.unref();
      this.#tick();
    });
  }

  /** Whether a device publish may go ahead now: routing is on time and nothing held is before it. */
  get open(): boolean {
    return this.#waiting.length === this.#head && this.#onTime();
  }

  /** Runs `proceed` now if the gate is open, else once it opens and what was held before it has gone. */
  admit(proceed: () => void): void {
    if (this.open) proceed();
    else this.#waiting.push(proceed);
  }

  /** How late the last probe came back (or, while one is overdue, how overdue it is), in ms. */
  get delayMs(): number {
    return this.#inFlightSince === undefined ? this.#lastDelayMs : Math.max(this.#lastDelayMs, this.#options.now() - this.#inFlightSince);
  }

  get held(): number {
    return this.#waiting.length - this.#head;
  }

  /** Stops probing and lets everything held go: the node is closing. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#releaseAll();
  }

  #onTime(): boolean {
    if (this.#closed || this.#lastEchoAt === undefined) return true;
    const now = this.#options.now();
    const since = now - this.#lastEchoAt;
    if (since <= this.#options.holdAfterMs) return true;
    if (this.#heldSince === undefined) {
      this.#heldSince = now;
      this.#events.holding?.(since);
    }
    return false;
  }

  #tick(): void {
    const now = this.#options.now();
    if (this.#inFlightSince !== undefined && now - this.#inFlightSince > this.#options.probeTimeoutMs) this.#inFlightSince = undefined;
    if (this.#inFlightSince === undefined) {
      this.#inFlightSince = now;
      this.#transport.send(now);
    }
  }

  #echoed(sentAt: number): void {
    const now = this.#options.now();
    this.#lastEchoAt = now;
    this.#lastDelayMs = now - sentAt;
    if (sentAt === this.#inFlightSince) this.#inFlightSince = undefined;
    if (this.#heldSince !== undefined) {
      this.#events.released?.(now - this.#heldSince, this.held);
      this.#heldSince = undefined;
    }
    this.#drain();
  }

  /**
   * Lets held publishes go a slice at a time, each slice in its own turn of the event loop:
   * all at once, tens of thousands of them would keep the node from reading anything else
   * (its subscription included) for seconds, and routing would fall behind again.
   */
  #drain(): void {
    if (this.#draining || this.held === 0) return;
    this.#draining = true;
    setImmediate(() => {
      this.#draining = false;
      if (!this.#onTime()) return; // behind again: the rest waits for the next probe back
      const end = Math.min(this.#head + RELEASE_SLICE, this.#waiting.length);
      const slice = this.#waiting.slice(this.#head, end);
      this.#head = end;
      this.#compact();
      for (const proceed of slice) proceed();
      this.#drain();
    });
  }

  #releaseAll(): void {
    const waiting = this.#waiting.slice(this.#head);
    this.#waiting = [];
    this.#head = 0;
    for (const proceed of waiting) proceed();
  }

  #compact(): void {
    if (this.#head === this.#waiting.length) {
      this.#waiting = [];
      this.#head = 0;
    } else if (this.#head > 4096 && this.#head * 2 > this.#waiting.length) {
      this.#waiting = this.#waiting.slice(this.#head);
      this.#head = 0;
    }
  }
}
