/**
 * Calls made while a flush is running, or in the same turn of the event loop, are handed to
 * the next flush together: group commit for writes (one durable transaction carries many
 * certificates), one query for many lookups. This is what lets issuance keep up with a
 * factory line; a lone call waits for no one (its flush starts in the next turn).
 */
export class Batcher<Item, Outcome> {
  #queue: { item: Item; resolve: (o: Outcome) => void; reject: (e: unknown) => void }[] = [];
  #scheduled = false;

  /** `flush` returns one outcome per item, in order; if it throws, every item of that flush fails with it. */
  constructor(
    private readonly flush: (items: Item[]) => Promise<Outcome[]>,
    private readonly maxGroup = 1000,
  ) {}

  submit(item: Item): Promise<Outcome> {
    return new Promise<Outcome>((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => void this.#drain());
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const group = this.#queue.splice(0, this.maxGroup);
      try {
        const outcomes = await this.flush(group.map((g) => g.item));
        group.forEach((g, i) => g.resolve(outcomes[i]!));
      } catch (error) {
        for (const g of group) g.reject(error);
      }
    }
    this.#scheduled = false;
  }
}
