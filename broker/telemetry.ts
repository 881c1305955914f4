// What the broker tells operators: one structured log event per refusal, would-refusal,
// forced disconnect, takeover and break-glass use, and Prometheus metrics. Nothing here
// decides anything.
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, type Registry as MetricsRegistry } from 'prom-client';
import { ALL_REASONS, REASONS, type Reason, type RefusalFacts } from './reasons.js';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1];

export class BrokerTelemetry {
  readonly #refusals: Counter<'reason' | 'stage'>;
  readonly #wouldRefuse: Counter<'reason'>;
  readonly #terminations: Counter<'reason'>;
  readonly #connected: Gauge;
  readonly #admissionSeconds: Histogram;
  readonly #handshakeSeconds: Histogram;
  readonly #revocationToCloseSeconds: Histogram;
  readonly #justInTime: Counter<'outcome'>;
  readonly #breakGlass: Counter<'waived'>;
  readonly #takeovers: Counter;
  readonly #expiring: Gauge;
  readonly #registers: MetricsRegistry[];

  constructor(
    private readonly log: Logger,
    metrics: MetricsRegistry,
  ) {
    const registers = (this.#registers = [metrics]);
    this.#refusals = new Counter({ name: 'fleet_refusals_total', help: 'Connections, subscriptions and publishes refused, by reason', labelNames: ['reason', 'stage'], registers });
    this.#wouldRefuse = new Counter({ name: 'fleet_would_refuse_total', help: 'Failed checks let through in monitor mode, by the reason enforcement would give', labelNames: ['reason'], registers });
    // Every reason is exported from the start, so a dashboard sees 0 rather than nothing.
    for (const reason of ALL_REASONS) {
      this.#refusals.inc({ reason, stage: REASONS[reason].stage }, 0);
      this.#wouldRefuse.inc({ reason }, 0);
    }
    this.#terminations = new Counter({ name: 'fleet_sessions_terminated_total', help: 'Live sessions closed by the broker because the identity behind them stopped being good', labelNames: ['reason'], registers });
    this.#connected = new Gauge({ name: 'fleet_connected_devices', help: 'Devices with an admitted session', registers });
    this.#admissionSeconds = new Histogram({ name: 'fleet_admission_seconds', help: 'Time to decide on a CONNECT, registry lookup included', buckets: LATENCY_BUCKETS, registers });
    this.#handshakeSeconds = new Histogram({ name: 'fleet_tls_handshake_seconds', help: 'From TCP accept to a completed TLS handshake', buckets: LATENCY_BUCKETS, registers });
    this.#revocationToCloseSeconds = new Histogram({
      name: 'fleet_revocation_to_close_seconds',
      help: 'From a status change being recorded to the session being closed',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers,
    });
    this.#justInTime = new Counter({ name: 'fleet_jit_registrations_total', help: 'Unknown certificates from operators’ CAs, by what just-in-time registration did with them', labelNames: ['outcome'], registers });
    this.#breakGlass = new Counter({ name: 'fleet_break_glass_uses_total', help: 'Admissions through a break-glass grant, by the failure it let pass', labelNames: ['waived'], registers });
    this.#takeovers = new Counter({ name: 'fleet_takeovers_total', help: 'Connections that replaced a live session of the same device', registers });
    this.#expiring = new Gauge({ name: 'fleet_certificates_expiring_30d', help: 'ACTIVE certificates whose notAfter falls within 30 days', registers });
  }

  refused(reason: Reason, facts: RefusalFacts): void {
    const stage = REASONS[reason].stage;
    this.#refusals.inc({ reason, stage });
    this.log.warn({ event: 'refusal', reason, stage, ...facts }, REASONS[reason].summary);
  }

  wouldRefuse(reason: Reason, facts: RefusalFacts): void {
    this.#wouldRefuse.inc({ reason });
    this.log.warn({ event: 'would_refuse', reason, stage: REASONS[reason].stage, ...facts }, `monitor mode: ${REASONS[reason].summary}`);
  }

  terminated(reason: Reason, facts: RefusalFacts & { latencyMs?: number }): void {
    this.#terminations.inc({ reason });
    if (facts.latencyMs !== undefined) this.#revocationToCloseSeconds.observe(facts.latencyMs / 1000);
    this.log.warn({ event: 'session_terminated', reason, ...facts }, 'session closed by the broker');
  }

  admitted(facts: RefusalFacts & { grant?: string; monitored?: boolean; renewOnly?: boolean }, seconds: number): void {
    this.#admissionSeconds.observe(seconds);
    this.log.info({ event: 'admitted', ...facts }, 'device admitted');
  }

  decided(seconds: number): void {
    this.#admissionSeconds.observe(seconds);
  }

  handshake(seconds: number): void {
    this.#handshakeSeconds.observe(seconds);
  }

  breakGlassUsed(waived: Reason, facts: RefusalFacts & { grant: string }): void {
    this.#breakGlass.inc({ waived });
    this.log.warn({ event: 'break_glass_used', waived, ...facts }, 'admitted through a break-glass grant');
  }

  /** `peer` when the newcomer connected here; `byBroker` (its broker's id) when it connected to another node. */
  takeover(facts: { deviceId: string; peer?: string; byBroker?: string; previousPeers: string[] }): void {
    this.#takeovers.inc();
    this.log.info({ event: 'takeover', ...facts }, 'a new connection replaces the live session of this device');
  }

  justInTime(outcome: string): void {
    this.#justInTime.inc({ outcome });
  }

  connectedDevices(count: number): void {
    this.#connected.set(count);
  }

  expiringCertificates(count: number): void {
    this.#expiring.set(count);
  }

  disconnected(facts: RefusalFacts & { cause: string }): void {
    this.log.info({ event: 'disconnected', ...facts }, 'device disconnected');
  }

  /** Exports a cluster node's routing delay and the device publishes its gate holds (broker/routing-gate.ts). */
  watchRouting(gate: { readonly delayMs: number; readonly held: number }): void {
    const registers = this.#registers;
    new Gauge({
      name: 'fleet_routing_delay_seconds',
      help: 'How late this node’s last probe came back through Redis: the delay of message routing',
      registers,
      collect() {
        this.set(gate.delayMs / 1000);
      },
    });
    new Gauge({
      name: 'fleet_publishes_held',
      help: 'Device publishes held back because routing is late (the devices wait, nothing is dropped)',
      registers,
      collect() {
        this.set(gate.held);
      },
    });
  }
}
