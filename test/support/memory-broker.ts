// A DeviceBroker on in-memory streams: the broker core without sockets, for deterministic
// tests of admission and enforcement (as Aedes' own tests do with a stream pair).
import { Duplex } from 'node:stream';
import { MqttClient, type IClientOptions } from 'mqtt';
import pino from 'pino';
import { Registry as MetricsRegistry } from 'prom-client';
import { DeviceBroker } from '../../broker/broker.js';
import type { PeerFacts } from '../../broker/peer.js';
import type { AdmissionSource } from '../../broker/verdicts.js';
import type { BrokerDeps, BrokerOptions, BrokerRegistry } from '../../broker/broker.js';
import { InProcessEventBus } from '../../registry/events.js';
import { DEFAULT_BROKER_OPTIONS } from '../../bin/service.js';
import { LogCapture } from './logs.js';

export function duplexPair(): [Duplex, Duplex] {
  const sides: Duplex[] = [];
  const make = (other: () => Duplex) =>
    new Duplex({
      read() {},
      write(chunk, _encoding, done) {
        other().push(chunk);
        done();
      },
      final(done) {
        other().push(null);
        done();
      },
    });
  sides.push(make(() => sides[1]!), make(() => sides[0]!));
  sides[0]!.once('close', () => sides[1]!.destroy());
  sides[1]!.once('close', () => sides[0]!.destroy());
  return [sides[0]!, sides[1]!];
}

export interface MemoryBroker {
  broker: DeviceBroker;
  bus: InProcessEventBus;
  logs: LogCapture;
  /** Connects an mqtt.js client as a device presenting `peer`; resolves with the CONNACK code. */
  connect(peer: PeerFacts, options: IClientOptions): Promise<{ client: MqttClient; returnCode: number }>;
  close(): Promise<void>;
}

/** A registry that knows admission records only: no groups, no operators' CAs. */
export function admissionOnly(source: AdmissionSource): BrokerRegistry {
  return {
    admissionRecord: (fingerprint) => source.admissionRecord(fingerprint),
    accessOf: (deviceId) => Promise.resolve({ deviceId: deviceId as never, groups: [], children: [] }),
    externalCas: () => Promise.resolve([]),
    cas: () => Promise.resolve([]),
    registerUnknown: () => Promise.reject(new Error('no operator CAs here')),
    revokedByCrl: () => false,
    recordSighting: () => Promise.resolve(),
    enforcement: () => Promise.resolve({ listener: 'enforce', monitoredGroups: [] }),
    activeGrants: () => Promise.resolve([]),
    grant: () => Promise.reject(new Error('no grants here')),
    recordGrantUse: () => Promise.resolve(),
  };
}

export async function memoryBroker(source: AdmissionSource, now = () => new Date(), options: Partial<BrokerOptions> = {}, extra: Pick<BrokerDeps, 'renewal' | 'sharedState'> = {}): Promise<MemoryBroker> {
  const bus = new InProcessEventBus();
  const logs = new LogCapture();
  const broker = await DeviceBroker.create({ ...DEFAULT_BROKER_OPTIONS, ...options }, { registry: admissionOnly(source), events: bus, clock: now, log: pino({ level: 'debug' }, logs), metrics: new MetricsRegistry(), ...extra });
  const clients: MqttClient[] = [];
  return {
    broker,
    bus,
    logs,
    connect(peer, options) {
      const [deviceSide, brokerSide] = duplexPair();
      broker.handle(brokerSide, peer);
      const client = new MqttClient(() => deviceSide, { protocolVersion: 4, reconnectPeriod: 0, ...options });
      clients.push(client);
      return new Promise((resolve) => {
        client.once('connect', () => resolve({ client, returnCode: 0 }));
        client.once('error', (error: Error & { code?: number }) => resolve({ client, returnCode: error.code ?? -1 }));
      });
    },
    async close() {
      for (const client of clients) client.end(true);
      await broker.close();
    },
  };
}
