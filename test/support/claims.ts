// Claim batches and claim sessions for tests: a batch created through the API, and an
// mqtt.js client connected with its claim certificate that sends requests and reads the
// reply meant for it.
import type { IClientOptions, MqttClient } from 'mqtt';
import type { TestFleet } from './fleet.js';
import type { Identity } from './mqtt.js';

export const CREATE = '$fleet/certificates/create-from-csr/json';
export const REGISTER = '$fleet/provision/register/json';
export const REPLY_TOPICS = [CREATE, REGISTER].flatMap((t) => [`${t}/accepted`, `${t}/rejected`]);

export interface ClaimBatchIdentity {
  batch: string;
  keyPem: string;
  certPem: string;
}

/** A template most tests use: `sensor-${SerialNumber}`, with a model attribute. */
export const SENSOR_TEMPLATE = {
  deviceId: 'sensor-${SerialNumber}',
  parameters: { SerialNumber: { pattern: '[0-9A-F]{8}' }, Model: { required: false } },
  attributes: { model: '${Model}', line: 'L7' },
};

export async function createBatch(fleet: TestFleet, name: string, extra: Record<string, unknown> = {}): Promise<ClaimBatchIdentity> {
  const created = await fleet.api('/v1/claim-batches', { body: { name, template: SENSOR_TEMPLATE, ...extra } });
  if (created.status !== 201) throw new Error(`claim batch ${name}: ${created.status} ${created.body.toString()}`);
  return { batch: name, keyPem: created.json.key, certPem: created.json.certificate };
}

/** The MQTT identity of a claim session: the batch's claim certificate, client id claim/<batch>/<nonce>. */
export function claimIdentity(claim: ClaimBatchIdentity, nonce: string): Identity {
  return { id: `claim/${claim.batch}/${nonce}`, keyPem: claim.keyPem, certPem: claim.certPem };
}

export interface Reply {
  accepted: boolean;
  topic: string;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- reply payloads are checked by the tests
}

/** The code of a rejected reply (undefined for an accepted one). */
export const errorCode = (reply: Reply): string | undefined => (reply.body as { error?: { code?: string } }).error?.code;

/** Everything a claim session receives, in order. */
export class ClaimSession {
  readonly received: Reply[] = [];
  #waiters: ((reply: Reply) => void)[] = [];

  private constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload) => {
      const reply = { accepted: topic.endsWith('/accepted'), topic, body: JSON.parse(payload.toString()) as unknown };
      this.received.push(reply);
      this.#waiters.shift()?.(reply);
    });
  }

  /** Connects with the claim certificate and subscribes to the reply topics (all four by default). */
  static async open(fleet: Pick<TestFleet, 'connect'>, claim: ClaimBatchIdentity, nonce: string, options: { extra?: IClientOptions; replies?: string[] } = {}): Promise<ClaimSession> {
    const client = await fleet.connect(claimIdentity(claim, nonce), options.extra);
    await client.subscribeAsync(options.replies ?? REPLY_TOPICS, { qos: 1 });
    return new ClaimSession(client);
  }

  /** Publishes a request and resolves with the next reply. */
  async request(topic: string, payload: unknown): Promise<Reply> {
    const next = new Promise<Reply>((resolve) => this.#waiters.push(resolve));
    await this.client.publishAsync(topic, typeof payload === 'string' ? payload : JSON.stringify(payload), { qos: 1 });
    return next;
  }

  createFromCsr(csr: string, parameters: Record<string, unknown>): Promise<Reply> {
    return this.request(CREATE, { csr, parameters });
  }

  register(deviceId: string, serial: string, parameters?: Record<string, unknown>): Promise<Reply> {
    return this.request(REGISTER, { deviceId, serial, ...(parameters ? { parameters } : {}) });
  }

  end(): Promise<void> {
    return new Promise((resolve) => this.client.end(true, {}, () => resolve()));
  }
}
