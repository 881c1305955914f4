// storm: the whole fleet connects at once, as fast as the broker admits it (attempts in
// flight bounded by --concurrency), then stays connected for --duration. The report's
// time series shows the connects per second the broker sustained.
import { criterion, timedPhase, type Scenario } from './scenario.js';

export const storm: Scenario = {
  name: 'storm',
  summary: 'connect every device as fast as the broker takes them, then hold',
  publishes: () => false,
  async run(context) {
    const { fleet } = context;
    const dropsBefore = fleet.recorder.totals.drops;
    await timedPhase(context, 'holding', context.options.durationMs);
    const drops = fleet.recorder.totals.drops - dropsBefore;
    return {
      criteria: [
        criterion('no device refused for good', fleet.stopped === 0, `${fleet.stopped} stopped`),
        criterion('every device stayed connected', drops === 0 && fleet.online === fleet.devices.length, `${drops} drops; ${fleet.online}/${fleet.devices.length} online at the end`),
      ],
      details: { drops },
    };
  },
};
