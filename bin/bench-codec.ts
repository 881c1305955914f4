// `npm run bench -- codec`: the MQTT codec (mqtt-packet) that the broker, through Aedes, and
// the simulator, through mqtt.js, parse and write every packet with. Nanoseconds per 64-byte
// QoS 0 telemetry PUBLISH, parsed and written, in this process: the best of many runs, since
// a single one is at the mercy of the machine. Says whether broker/patches/ is applied, so a
// figure can be compared with one from an unpatched install.
import { Writable } from 'node:stream';
import mqttPacket, { type Packet } from 'mqtt-packet';

export interface CodecFigures {
  patched: boolean;
  packets: number;
  runs: number;
  parseNs: number;
  writeNs: number;
}

const TELEMETRY: Packet = { cmd: 'publish', topic: 'devices/meter-000042/telemetry', payload: Buffer.alloc(64, 'x'), qos: 0, retain: false, dup: false };

/** Whether broker/patches/mqtt-packet+9.0.2.patch is applied to the installed package. */
export function mqttPacketPatched(): boolean {
  return typeof (mqttPacket.parser() as unknown as { _runState?: unknown })._runState === 'function';
}

function bestNsPerPacket(runs: number, packets: number, work: () => void): number {
  let best = Infinity;
  for (let run = 0; run < runs; run++) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < packets; i++) work();
    best = Math.min(best, Number(process.hrtime.bigint() - started) / packets);
  }
  return best;
}

export function codecBench(packets = 200_000, runs = 20): CodecFigures {
  const wire = mqttPacket.generate(TELEMETRY);
  const parser = mqttPacket.parser();
  let parsed = 0;
  parser.on('packet', () => parsed++);
  // A socket that takes every write at once: what is measured is the codec, not the transport.
  const sink = new Writable({ write: (_chunk, _encoding, done) => done() });
  const parseNs = bestNsPerPacket(runs, packets, () => parser.parse(wire));
  const writeNs = bestNsPerPacket(runs, packets, () => mqttPacket.writeToStream(TELEMETRY, sink));
  if (parsed !== packets * runs) throw new Error(`parsed ${parsed} packets of ${packets * runs}`);
  return { patched: mqttPacketPatched(), packets, runs, parseNs, writeNs };
}
