// QoS 1 end to end, across reconnects and certificate switches. MQTT's own retransmission
// lives and dies with one session; a device that changes connection keeps its own list of
// readings not yet acknowledged, numbered per device, and sends them again on the next
// connection. The receiving side drops what it has already seen by (device, sequence).

/** One device's readings published but not yet acknowledged, by sequence number. */
export class Outbox {
  /** Sequence → time the reading was taken (ms since the epoch). */
  #pending: Map<number, number> | undefined;
  #last = 0;

  /** Numbers a new reading taken at `t` and holds it until it is acknowledged. */
  add(t: number): number {
    const seq = ++this.#last;
    (this.#pending ??= new Map()).set(seq, t);
    return seq;
  }

  /** Numbers a reading that is not held (QoS 0: sent once or not at all). */
  skip(): number {
    return ++this.#last;
  }

  /** The broker has the reading: it leaves the outbox. False if it already had. */
  ack(seq: number): boolean {
    return this.#pending?.delete(seq) ?? false;
  }

  /** When the reading was taken, while it is pending. */
  takenAt(seq: number): number | undefined {
    return this.#pending?.get(seq);
  }

  /** Pending readings, oldest first (a Map iterates in insertion order). */
  *pending(): IterableIterator<[seq: number, t: number]> {
    if (this.#pending) yield* this.#pending;
  }

  get size(): number {
    return this.#pending?.size ?? 0;
  }

  /** The highest sequence number handed out: readings 1…last were published. */
  get last(): number {
    return this.#last;
  }
}

/** What one receiver has seen of one device: everything up to `through`, and some above. */
interface SeenSequences {
  through: number;
  above: Set<number> | undefined;
  duplicates: number;
}

export interface DeliveryCount {
  /** Distinct sequence numbers received. */
  received: number;
  /** Deliveries of a sequence number already received. */
  duplicates: number;
}

/**
 * The receiving side's ledger: which sequence numbers arrived from which device. Memory
 * stays small while delivery is in order: only numbers past a gap are kept one by one.
 */
export class DeliveryLedger {
  readonly #devices = new Map<string, SeenSequences>();
  #received = 0;
  #duplicates = 0;

  /** Records a delivery; false when it is a duplicate. */
  record(deviceId: string, seq: number): boolean {
    let seen = this.#devices.get(deviceId);
    if (!seen) this.#devices.set(deviceId, (seen = { through: 0, above: undefined, duplicates: 0 }));
    if (seq <= seen.through || seen.above?.has(seq)) {
      seen.duplicates++;
      this.#duplicates++;
      return false;
    }
    this.#received++;
    if (seq === seen.through + 1) {
      seen.through = seq;
      const above = seen.above;
      if (above) {
        while (above.delete(seen.through + 1)) seen.through++;
        if (above.size === 0) seen.above = undefined;
      }
    } else {
      (seen.above ??= new Set()).add(seq);
    }
    return true;
  }

  has(deviceId: string, seq: number): boolean {
    const seen = this.#devices.get(deviceId);
    return !!seen && (seq <= seen.through || !!seen.above?.has(seq));
  }

  /** The sequence numbers in 1…`last` that never arrived from the device. */
  missing(deviceId: string, last: number): number[] {
    const seen = this.#devices.get(deviceId);
    const missing: number[] = [];
    for (let seq = (seen?.through ?? 0) + 1; seq <= last; seq++) if (!seen?.above?.has(seq)) missing.push(seq);
    return missing;
  }

  of(deviceId: string): DeliveryCount {
    const seen = this.#devices.get(deviceId);
    return { received: seen ? seen.through + (seen.above?.size ?? 0) : 0, duplicates: seen?.duplicates ?? 0 };
  }

  get totals(): DeliveryCount {
    return { received: this.#received, duplicates: this.#duplicates };
  }
}
