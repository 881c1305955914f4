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

export interface RoutingGateEvents {
  /** The gate started holding publishes: `sinceEchoMs` without a probe back. */
  holding(sinceEchoMs: number): void;
  /** The gate let publishes through again after `heldMs`, `released` of them waiting. */
  released(heldMs: number, released: number): void;
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
  #waiting: (() => void)[] = [];
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

  /** Whether a device publish may go ahead now. */
  get open(): boolean {
    if (this.#closed || this.#lastEchoAt === undefined) return true;
    const since = this.#options.now() - this.#lastEchoAt;
    if (since <= this.#options.holdAfterMs) return true;
    if (this.#heldSince === undefined) {
      this.#heldSince = this.#options.now();
      this.#events.holding?.(since);
    }
    return false;
  }

  /** Runs `proceed` now if the gate is open, else once it opens. */
  admit(proceed: () => void): void {
    if (this.open) proceed();
    else this.#waiting.push(proceed);
  }

  /** How late the last probe came back (or, while one is overdue, how overdue it is), in ms. */
  get delayMs(): number {
    return this.#inFlightSince === undefined ? this.#lastDelayMs : Math.max(this.#lastDelayMs, this.#options.now() - this.#inFlightSince);
  }

  get held(): number {
    return this.#waiting.length;
  }

  /** Stops probing and lets everything held go: the node is closing. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#release();
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
    if (this.#heldSince !== undefined || this.#waiting.length > 0) this.#release();
  }

  #release(): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    if (this.#heldSince !== undefined) {
      this.#events.released?.(this.#options.now() - this.#heldSince, waiting.length);
      this.#heldSince = undefined;
    }
    for (const proceed of waiting) proceed();
  }
}
