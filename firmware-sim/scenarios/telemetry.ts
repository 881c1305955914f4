// telemetry: every device publishes at a steady rate for --duration, at QoS 0 or 1, while
// the backend reader receives it all; halfway through, the backend sends every device one
// command. At QoS 1 nothing may be lost.
import { inPool } from '../stats.js';
import { criterion, timedPhase, type Scenario } from './scenario.js';

export const telemetry: Scenario = {
  name: 'telemetry',
  summary: 'steady telemetry for a duration, QoS 0 or 1, and one command to every device',
  publishes: (options) => options.ratePerDevice > 0,
  async run(context) {
    const { fleet, options, progress } = context;
    const failuresBefore = fleet.recorder.totals.connectFailures;
    const dropsBefore = fleet.recorder.totals.drops;
    fleet.startTelemetry(options.ratePerDevice);
    let commands: Promise<void> | undefined;
    await timedPhase(context, 'publishing', options.durationMs, (elapsed) => {
      if (elapsed >= options.durationMs / 2 && fleet.reader && !commands) {
        fleet.recorder.mark('commands');
        const reader = fleet.reader;
        commands = inPool(fleet.devices, 64, (device) => reader.sendCommand(device.id, 'ping').catch(() => undefined));
      }
    });
    fleet.stopTelemetry();
    await commands;
    progress.phase('draining', 1);
    fleet.recorder.mark('draining');
    const commandsSent = fleet.reader?.counts.commandsSent ?? 0;
    await fleet.drain(options.drainMs);
    progress.update(1);
    // Commands are QoS 1 too: wait for their delivery within the same allowance.
    await fleet.until(() => fleet.devices.every((d) => d.counts.commands > 0 || !fleet.reader), options.drainMs);
    const delivery = fleet.delivery();
    const failures = fleet.recorder.totals.connectFailures - failuresBefore;
    const drops = fleet.recorder.totals.drops - dropsBefore;
    const criteria = [
      criterion('no failed connects', failures === 0, `${failures} failed`),
      criterion('every device stayed connected', drops === 0 && fleet.online === fleet.devices.length, `${drops} drops; ${fleet.online}/${fleet.devices.length} online at the end`),
    ];
    if (delivery && options.qos === 1) criteria.push(criterion('no QoS 1 reading lost', delivery.lost === 0, `${delivery.lost} lost, ${delivery.duplicates} duplicates of ${delivery.published}`));
    const commanded = fleet.devices.filter((d) => d.counts.commands > 0).length;
    if (fleet.reader) criteria.push(criterion('every device received its command', commanded === fleet.devices.length, `${commanded}/${fleet.devices.length} devices`));
    return { criteria, details: { failedConnects: failures, drops, commandsSent, commandsReceived: fleet.recorder.totals.commands } };
  },
};
