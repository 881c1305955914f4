// revocation: with the fleet connected (and publishing, if --rate), K devices are revoked one
// after another through the API. For each, the time from the request, and from its
// acknowledgement, to the device seeing its connection closed — negative when the close came
// before the acknowledgement, as the service promises. Then the revoked devices must stop
// for good on CONNACK 5 without trying again, and every other device must stay connected.
import type { FirmwareDevice } from '../device/firmware.js';
import { TERMINAL_REFUSAL } from '../device/mqtt-connect.js';
import { errorCode } from '../error-code.js';
import { distribution } from '../stats.js';
import { criterion, type Scenario } from './scenario.js';

/** How long revoked devices are watched after they stopped, to see that they stay stopped. */
const QUIET_MS = 2000;

interface RevokedDevice {
  id: string;
  /** On the fleet's clock: request sent, acknowledged, connection closed as the device saw it. */
  sentAt: number;
  ackedAt?: number;
  closedAt?: number;
  error?: string;
}

export const revocation: Scenario = {
  name: 'revocation',
  summary: 'revoke K connected devices through the API; they stop for good, the rest stay',
  publishes: (options) => options.ratePerDevice > 0,
  async run(context) {
    const { fleet, options, progress } = context;
    const count = Math.min(options.revoke, fleet.devices.length);
    // Every n-th device, so the revoked ones are spread over the fleet.
    const step = fleet.devices.length / Math.max(1, count);
    const targets = Array.from({ length: count }, (_, i) => fleet.devices[Math.floor(i * step)]!);
    const targetSet = new Set<FirmwareDevice>(targets);
    const others = fleet.devices.filter((d) => !targetSet.has(d));
    const othersDropsBefore = new Map(others.map((d) => [d, d.counts.drops]));

    if (options.ratePerDevice > 0) fleet.startTelemetry(options.ratePerDevice);
    const records = new Map<FirmwareDevice, RevokedDevice>();
    const unwatch = fleet.recorder.onDrop((device, at) => {
      const record = records.get(device);
      if (record && record.closedAt === undefined) record.closedAt = at;
    });

    progress.phase('revoking', count);
    fleet.recorder.mark('revoking');
    const attemptsAtRevocation = new Map<FirmwareDevice, number>();
    for (const [i, device] of targets.entries()) {
      attemptsAtRevocation.set(device, device.counts.attempts);
      const record: RevokedDevice = { id: device.id, sentAt: fleet.timers.now() };
      records.set(device, record);
      try {
        await fleet.api.revokeDevice(device.id, 'keyCompromise');
        record.ackedAt = fleet.timers.now();
      } catch (error) {
        record.error = errorCode(error);
      }
      progress.update(i + 1);
    }

    // Each revoked device notices the close, retries once, and is refused with CONNACK 5.
    progress.phase('waiting for the revoked to stop', count);
    await fleet.until(() => targets.every((d) => d.state === 'stopped'), options.drainMs, () => progress.update(targets.filter((d) => d.state === 'stopped').length));
    const attemptsAtStop = new Map(targets.map((d) => [d, d.counts.attempts]));
    const remaining = Math.max(QUIET_MS, options.durationMs - (fleet.timers.now() - (records.get(targets[0]!)?.sentAt ?? 0)));
    await fleet.hold(remaining);
    unwatch();
    fleet.stopTelemetry();
    if (fleet.reader) await fleet.drain(options.drainMs);

    const stoppedRight = targets.filter((d) => d.state === 'stopped' && d.stopReason === TERMINAL_REFUSAL).length;
    const retriedAfterStop = targets.filter((d) => d.counts.attempts !== attemptsAtStop.get(d)).length;
    const othersDropped = others.filter((d) => d.counts.drops !== othersDropsBefore.get(d)).length;
    const othersOnline = others.filter((d) => d.state === 'online').length;
    const timed = [...records.values()].filter((r) => r.ackedAt !== undefined && r.closedAt !== undefined);
    const requestToClose = timed.map((r) => r.closedAt! - r.sentAt);
    const ackToClose = timed.map((r) => r.closedAt! - r.ackedAt!);
    const apiErrors = [...records.values()].filter((r) => r.error).length;
    const delivery = fleet.delivery();

    const criteria = [
      criterion('every revocation acknowledged', apiErrors === 0, `${count - apiErrors}/${count}`),
      criterion('every revoked device saw its connection closed', timed.length === count, `${timed.length}/${count}`),
      criterion('every revoked device stopped on not_authorized', stoppedRight === count, `${stoppedRight}/${count}`),
      criterion('no revoked device tried again after the refusal', retriedAfterStop === 0, `${retriedAfterStop} tried again`),
      criterion('every other device stayed connected', othersDropped === 0 && othersOnline === others.length, `${othersOnline}/${others.length} online, ${othersDropped} dropped`),
    ];
    if (delivery && options.qos === 1) criteria.push(criterion('no QoS 1 reading lost', delivery.lost === 0, `${delivery.lost} lost (${delivery.abandoned} abandoned by revoked devices)`));
    return {
      criteria,
      details: {
        revoked: count,
        closedBeforeAck: ackToClose.filter((ms) => ms <= 0).length,
        requestToCloseMs: distribution(requestToClose),
        ackToCloseMs: distribution(ackToClose),
        samples: { requestToCloseMs: requestToClose, ackToCloseMs: ackToClose },
        devices: targets.map((d) => ({
          id: d.id,
          state: d.state,
          stopReason: d.stopReason ?? null,
          attemptsAfterRevocation: d.counts.attempts - attemptsAtRevocation.get(d)!,
          requestToCloseMs: records.get(d)?.closedAt !== undefined ? records.get(d)!.closedAt! - records.get(d)!.sentAt : null,
        })),
        othersDropped,
      },
    };
  },
};
