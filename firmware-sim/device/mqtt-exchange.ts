// Request and reply over MQTT, the way the service's $fleet topics answer: the client
// subscribes to the request topic's `…/accepted` and `…/rejected`, publishes the request, and
// the one reply meant for it arrives on one of the two. Claim sessions (create-from-csr,
// register) and renewal on a device's own session both speak it.
import type { MqttClient } from 'mqtt';
import type { Timers } from '../timers.js';

/** Why an exchange ended without an accepted reply, when the service did not say (it says with a code of its own). */
export const EXCHANGE_FAILURES = {
  reply_timeout: 'no reply came within the time allowed',
  connection_lost: 'the connection closed before the reply came',
  subscription_refused: 'the broker refused a reply topic (SUBACK 0x80)',
  reply_unreadable: 'the reply is not the JSON object the topic answers with',
  offline: 'there is no live session to send the request on',
} as const;

export type ExchangeFailure = keyof typeof EXCHANGE_FAILURES;

/** An exchange that did not end in an accepted reply: the code of the rejected reply, or an EXCHANGE_FAILURES code. */
export class ExchangeError extends Error {
  override readonly name = 'ExchangeError';
  constructor(
    readonly code: string,
    message: string = EXCHANGE_FAILURES[code as ExchangeFailure] ?? code,
  ) {
    super(message);
  }
}

export type JsonObject = Record<string, unknown>;

/** A request topic and its two reply topics. */
export interface ReplyTopics {
  request: string;
  accepted: string;
  rejected: string;
}

export function replyTopics(request: string): ReplyTopics {
  return { request, accepted: `${request}/accepted`, rejected: `${request}/rejected` };
}

/** Subscribes to the filters; resolves on a SUBACK that grants them all (MQTT 3.1.1 §3.9.3: 0x80 is a refusal). */
export function subscribeAll(client: MqttClient, filters: string[], qos: 0 | 1): Promise<void> {
  return new Promise((resolve, reject) =>
    client.subscribe(filters, { qos }, (error, granted) => {
      if (error) return reject(new ExchangeError(client.connected ? 'subscription_refused' : 'connection_lost', error.message));
      if (!granted || granted.length !== filters.length || granted.some((g) => g.qos === 0x80)) return reject(new ExchangeError('subscription_refused'));
      resolve();
    }),
  );
}

export interface ExchangeOptions {
  timers: Timers;
  timeoutMs: number;
  /** QoS of the request (the reply comes at most at it). */
  qos: 0 | 1;
}

/**
 * Publishes `body` on the request topic and resolves with the accepted reply, or rejects with
 * the rejected reply's code. The client must hold the reply subscriptions already, and have
 * one exchange at a time on these topics: a reply names no request.
 */
export function exchange(client: MqttClient, topics: ReplyTopics, body: JsonObject, options: ExchangeOptions): Promise<JsonObject> {
  return new Promise<JsonObject>((resolve, reject) => {
    const settle = (outcome: JsonObject | ExchangeError) => {
      options.timers.cancel(timer);
      client.off('message', onMessage);
      client.off('close', onClose);
      if (outcome instanceof ExchangeError) reject(outcome);
      else resolve(outcome);
    };
    const onMessage = (topic: string, payload: Buffer) => {
      if (topic === topics.accepted || topic === topics.rejected) settle(replyOf(topic === topics.accepted, payload));
    };
    const onClose = () => settle(new ExchangeError('connection_lost'));
    const timer = options.timers.at(options.timers.now() + options.timeoutMs, () => settle(new ExchangeError('reply_timeout')));
    client.on('message', onMessage);
    client.once('close', onClose);
    client.publish(topics.request, JSON.stringify(body), { qos: options.qos }, (error) => {
      if (error) settle(new ExchangeError('connection_lost'));
    });
  });
}

/** An accepted reply's body, or the rejected reply's code as an error. */
function replyOf(accepted: boolean, payload: Buffer): JsonObject | ExchangeError {
  const reply = objectOf(payload);
  if (!reply) return new ExchangeError('reply_unreadable');
  if (accepted) return reply;
  const error = reply.error as { code?: unknown; message?: unknown } | undefined;
  if (typeof error?.code !== 'string') return new ExchangeError('reply_unreadable');
  return new ExchangeError(error.code, typeof error.message === 'string' ? error.message : error.code);
}

function objectOf(payload: Buffer): JsonObject | undefined {
  try {
    const value: unknown = JSON.parse(payload.toString('utf8'));
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as JsonObject) : undefined;
  } catch {
    return undefined;
  }
}
