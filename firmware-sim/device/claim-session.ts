// Claim sessions over MQTT: the batch's claim certificate over mutual TLS, client id
// claim/<batch>/<nonce>, a clean session without a will (the broker admits nothing else with
// a claim certificate), and the four reply topics subscribed before any request is sent.
import type { SecureContext } from 'node:tls';
import type { Timers } from '../timers.js';
import { CREATE_FROM_CSR_TOPIC, REGISTER_TOPIC, type ClaimLink, type ClaimStep, type ClaimTransport } from './claim.js';
import { connectOnce, endClient } from './mqtt-connect.js';
import { exchange, replyTopics, subscribeAll } from './mqtt-exchange.js';

const TOPICS = { create: replyTopics(CREATE_FROM_CSR_TOPIC), register: replyTopics(REGISTER_TOPIC) } as const satisfies Record<ClaimStep, unknown>;
const REPLY_FILTERS = Object.values(TOPICS).flatMap((t) => [t.accepted, t.rejected]);

export interface ClaimSessionConfig {
  broker: { host: string; port: number };
  batch: string;
  /** The claim key, the claim certificate and the fleet's CA bundle: one context for every session of the batch. */
  secureContext: SecureContext;
  timers: Timers;
  connectTimeoutMs: number;
  replyTimeoutMs: number;
  localAddress?: string;
}

export class MqttClaimTransport implements ClaimTransport {
  constructor(private readonly config: ClaimSessionConfig) {}

  async open(nonce: string): Promise<ClaimLink> {
    const { config } = this;
    const client = await connectOnce({
      broker: config.broker,
      clientId: `claim/${config.batch}/${nonce}`,
      secureContext: config.secureContext,
      keepaliveSeconds: 60,
      connectTimeoutMs: config.connectTimeoutMs,
      localAddress: config.localAddress,
    });
    try {
      await subscribeAll(client, REPLY_FILTERS, 1);
    } catch (error) {
      await endClient(client, true);
      throw error;
    }
    return {
      request: (step, body) => exchange(client, TOPICS[step], body, { timers: config.timers, timeoutMs: config.replyTimeoutMs, qos: 1 }),
      close: () => endClient(client),
    };
  }
}
