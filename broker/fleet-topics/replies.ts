// The fleet's own request/reply topics ($fleet/…) serve one session at a time: a request goes
// to the broker's handler and reaches no subscriber, and its reply goes to the session that
// asked and to no other, although every device subscribes to the same reply topics (and many
// share one claim certificate). The reply is written with Aedes' Client.publish, which
// delivers to that client alone; Aedes still passes it through authorizeForward, where it is
// recognised by its payload buffer. Anything else on these topics — a publish by a device,
// a reply meant for another session — is forwarded to nobody.
import type { Client, PublishPacket } from 'aedes';

export class DirectReplies {
  /** Each reply payload and the one client it was made for. */
  readonly #for = new WeakMap<Buffer, Client>();

  constructor(
    /** Whether a topic is one of the fleet's request or reply topics. */
    private readonly isServiceTopic: (topic: string) => boolean,
  ) {}

  /** Sends `body` as JSON on `topic` to this client only. */
  send(client: Client, topic: string, body: unknown, qos: 0 | 1 = 0): void {
    const payload = Buffer.from(JSON.stringify(body));
    this.#for.set(payload, client);
    client.publish({ cmd: 'publish', topic, payload, qos, retain: false, dup: false }, () => undefined);
  }

  /** Aedes' authorizeForward for the fleet's topics: a reply reaches the client it was made for, nothing else reaches anyone. */
  forward<P extends PublishPacket>(client: Client, packet: P): P | null {
    if (!this.isServiceTopic(packet.topic)) return packet;
    return Buffer.isBuffer(packet.payload) && this.#for.get(packet.payload) === client ? packet : null;
  }
}
