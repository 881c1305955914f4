// rotation: every device renews its certificate while telemetry flows at QoS 1. Renewals are
// spread at random over the first two thirds of --duration; each device gets a new key and
// certificate (over the channel it renews by: its MQTT session, HTTPS, or the operator API),
// connects with them (taking its own session over) and sends again what was unacknowledged.
// A device-authenticated renewal retires the old certificate (INACTIVE) once the new one is
// seen on a connection; either way, once a device runs on its new certificate, the old one is
// revoked: a device still using it would be thrown off, so no drop afterwards proves the
// switch happened.
// Passes only with zero failed connects and zero lost QoS 1 readings.
import { errorCode } from '../error-code.js';
import type { FirmwareDevice } from '../device/firmware.js';
import { criterion, timedPhase, type Scenario } from './scenario.js';

const REVOCATIONS_IN_FLIGHT = 16;

export const rotation: Scenario = {
  name: 'rotation',
  summary: 'every device renews its certificate and switches to it under QoS 1 load',
  publishes: () => true,
  async run(context) {
    const { fleet, options, progress } = context;
    const failuresBefore = fleet.recorder.totals.connectFailures;
    const dropsBefore = fleet.recorder.totals.drops;
    const window = (options.durationMs * 2) / 3;
    const random = fleet.env.random;

    fleet.startTelemetry(options.ratePerDevice);
    const start = fleet.timers.now();
    for (const device of fleet.devices) fleet.timers.at(start + random() * window, () => device.renewNow());

    // Retire each first certificate as soon as its device runs on a new one, a few requests
    // in flight at a time; each answer starts the next.
    const retired = new Set<FirmwareDevice>();
    const revokeErrors: Record<string, number> = {};
    let revoking = 0;
    const retireSwitched = (): void => {
      for (const device of fleet.devices) {
        if (revoking >= REVOCATIONS_IN_FLIGHT) return;
        if (retired.has(device) || device.state !== 'online' || device.connectedSerial === device.firstSerial) continue;
        retired.add(device);
        revoking++;
        fleet.api.revokeCertificate(device.firstSerial!, 'superseded').then(
          () => {
            revoking--;
            retireSwitched();
          },
          (error: unknown) => {
            revoking--;
            const code = errorCode(error);
            revokeErrors[code] = (revokeErrors[code] ?? 0) + 1;
            retireSwitched();
          },
        );
      }
    };
    await timedPhase(context, 'rotating', options.durationMs, retireSwitched);
    fleet.stopTelemetry();
    // Stragglers (a renewal retried late) get the time the drain allows.
    await fleet.until(() => {
      retireSwitched();
      return retired.size === fleet.devices.length && revoking === 0;
    }, options.drainMs);
    progress.phase('draining', 1);
    fleet.recorder.mark('draining');
    await fleet.drain(options.drainMs);
    progress.update(1);

    const delivery = fleet.delivery();
    const failures = fleet.recorder.totals.connectFailures - failuresBefore;
    const drops = fleet.recorder.totals.drops - dropsBefore;
    const onNewSerial = fleet.devices.filter((d) => d.state === 'online' && d.connectedSerial !== d.firstSerial).length;
    const n = fleet.devices.length;
    return {
      criteria: [
        criterion('no failed connects', failures === 0, `${failures} failed`),
        criterion('no QoS 1 reading lost', delivery !== undefined && options.qos === 1 && delivery.lost === 0, delivery ? `${delivery.lost} lost, ${delivery.duplicates} duplicates of ${delivery.published}` : 'no reader'),
        criterion('every device online on a new certificate', onNewSerial === n, `${onNewSerial}/${n}`),
        criterion('every old certificate revoked, no device thrown off', retired.size === n && Object.keys(revokeErrors).length === 0 && drops === 0, `${retired.size - Object.values(revokeErrors).reduce((a, b) => a + b, 0)}/${n} revoked; ${drops} drops`),
      ],
      details: {
        failedConnects: failures,
        lost: delivery?.lost ?? null,
        duplicates: delivery?.duplicates ?? null,
        renewed: fleet.devices.filter((d) => d.counts.renewals > 0).length,
        onNewCertificate: onNewSerial,
        oldCertificatesRevoked: retired.size - Object.values(revokeErrors).reduce((a, b) => a + b, 0),
        revokeErrors,
        drops,
        windowS: window / 1000,
      },
    };
  },
};
