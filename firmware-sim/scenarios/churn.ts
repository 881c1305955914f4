// churn: for --duration, devices lose their connection at random (the socket ends abruptly,
// as a dropped network would end it) and come back by themselves with backoff. Then the
// dropping stops and every device must be back online; at QoS 1 nothing may be lost.
import { criterion, timedPhase, type Scenario } from './scenario.js';

const CHURN_TICK_MS = 100;

export const churn: Scenario = {
  name: 'churn',
  summary: 'random drops and reconnects for a duration; everyone back online at the end',
  publishes: (options) => options.ratePerDevice > 0,
  async run(context) {
    const { fleet, options, progress } = context;
    const random = fleet.env.random;
    const reconnectsBefore = fleet.recorder.totals.reconnects;
    const failuresBefore = fleet.recorder.totals.connectFailures;
    if (options.ratePerDevice > 0) fleet.startTelemetry(options.ratePerDevice);

    // Each online device drops with the probability that gives one drop per dropInterval on average.
    const chance = CHURN_TICK_MS / options.dropIntervalMs;
    let caused = 0;
    const dropper = setInterval(() => {
      for (const device of fleet.devices) if (random() < chance && device.dropConnection()) caused++;
    }, CHURN_TICK_MS);
    try {
      await timedPhase(context, 'churning', options.durationMs);
    } finally {
      clearInterval(dropper);
    }

    progress.phase('recovering', fleet.devices.length);
    fleet.recorder.mark('recovering');
    const recoveryStarted = fleet.timers.now();
    // A drop caused on the last tick is seen by its device only when the socket's close
    // arrives, so "everyone online" alone could hold before that device has even noticed:
    // recovery also means every drop caused has been followed by a reconnect.
    const reconnected = () => fleet.recorder.totals.reconnects - reconnectsBefore >= caused;
    const recovered = await fleet.until(() => reconnected() && fleet.online === fleet.devices.length, Math.max(options.drainMs, 30_000), () => progress.update(fleet.online));
    const recoveryS = (fleet.timers.now() - recoveryStarted) / 1000;
    fleet.stopTelemetry();
    if (fleet.reader) {
      fleet.recorder.mark('draining');
      await fleet.drain(options.drainMs);
    }

    const reconnects = fleet.recorder.totals.reconnects - reconnectsBefore;
    const failures = fleet.recorder.totals.connectFailures - failuresBefore;
    const delivery = fleet.delivery();
    const criteria = [
      criterion('devices dropped and reconnected', caused > 0 && reconnects >= caused, `${caused} drops caused, ${reconnects} reconnects`),
      criterion('no device refused for good', fleet.stopped === 0, `${fleet.stopped} stopped`),
      criterion('every device back online', recovered, `${fleet.online}/${fleet.devices.length} online ${recoveryS.toFixed(1)} s after the churn`),
    ];
    if (delivery && options.qos === 1) criteria.push(criterion('no QoS 1 reading lost', delivery.lost === 0, `${delivery.lost} lost, ${delivery.duplicates} duplicates of ${delivery.published}`));
    return { criteria, details: { dropsCaused: caused, reconnects, failedConnects: failures, recoveryS } };
  },
};
