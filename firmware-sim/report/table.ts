// The run's summary as a person reads it at the terminal: one line per subject, then the
// pass criteria.
import type { Summary } from '../histogram.js';
import type { Rate } from '../pacer.js';
import type { ClaimReport, RunReport } from '../run.js';

const f = (n: number | undefined, digits = 1) => (n !== undefined && Number.isFinite(n) ? n.toFixed(digits) : '-');
const latency = (s: Summary, digits = 1) => (s.count ? `p50 ${f(s.p50, digits)} ms, p99 ${f(s.p99, digits)} ms` : 'no samples');
const reasons = (counts: Record<string, number>) =>
  Object.entries(counts)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');

const rate = (r: Rate) => `${f(r.perSecond, r.perSecond < 10 ? 1 : 0)}/s, bursts of ${r.burst}`;

function claimLine(c: ClaimReport): string {
  return (
    `claims             batch ${c.batch} (limit ${rate(c.rateLimit)}; paced at ${rate(c.pace)}): ${c.sessions} sessions, ` +
    `${c.accepted.create} create-from-csr and ${c.accepted.register} register accepted (${f(c.requestsPerSecond)} requests/s); ` +
    `create ${latency(c.latencyMs.create)}, register ${latency(c.latencyMs.register)}; ` +
    `${c.paced.requests} requests paced (${f(c.paced.waitS)} s waited); refusals ${Object.keys(c.refusals).length ? reasons(c.refusals) : 'none'}`
  );
}

export function formatSummary(r: RunReport, files: string[] = []): string {
  const p = r.publish;
  const lines = [
    `scenario           ${r.scenario} — ${r.passed ? 'PASSED' : 'FAILED'} in ${f(r.durationS)} s`,
    `devices            ${r.devices.enrolled}/${r.devices.requested} enrolled, ${r.devices.onlineAtEnd} online at the end${Object.keys(r.devices.stoppedBy).length ? `, stopped: ${reasons(r.devices.stoppedBy)}` : ''}`,
    `enrolled           ${r.enroll.via === 'claim' ? 'by claim' : 'through the API'}: ${r.enroll.ok} ok, ${r.enroll.failed} failed${r.enroll.failed ? ` (${reasons(r.enroll.failures)})` : ''}; ${f(r.enroll.perSecond)} ${r.enroll.via === 'claim' ? 'claims' : 'devices'}/s; latency ${latency(r.enroll.latencyMs)}`,
    ...(r.enroll.claim ? [claimLine(r.enroll.claim)] : []),
    `connected          ${r.connect.ok} ok, ${r.connect.failed} failed; ${r.connect.reconnects} reconnects, ${r.connect.drops} drops; ${r.connect.online} online in ${f(r.connect.phaseS)} s (${f(r.connect.perSecond, 0)}/s, best second ${f(r.connect.peakPerSecond, 0)}); latency ${latency(r.connect.latencyMs)}`,
    `refusals           ${Object.keys(r.refusals).length ? reasons(r.refusals) : 'none'}`,
    `published          ${p.completed}/${p.sent} completed, ${p.failed} failed; QoS ${p.qos}; ${f(p.perSecond)} msg/s; ${p.qos === 1 ? 'ack' : 'write'} latency ${latency(p.latencyMs, 2)}`,
  ];
  if (p.received !== undefined) {
    lines.push(
      `delivered          ${p.received} readings to the backend; ${p.lost !== undefined ? `${p.lost} lost, ${p.duplicates} duplicates${p.abandoned ? `, ${p.abandoned} abandoned by stopped devices` : ''}` : `${p.sent - p.received} of the sent not received (QoS 0 may drop)`}; latency ${p.deliveryLatencyMs ? latency(p.deliveryLatencyMs) : '-'}`,
    );
  }
  for (const [channel, c] of Object.entries(r.renewal.channels)) {
    lines.push(`${`renewed via ${channel}`.padEnd(19)}${c.renewed} ok, ${c.failed} failed${c.failed ? ` (${reasons(c.failures)})` : ''}; latency ${latency(c.latencyMs)}`);
  }
  if (r.commands.sent) lines.push(`commands           ${r.commands.sent} sent, ${r.commands.received} received`);
  const rev = r.details as { requestToCloseMs?: Summary; ackToCloseMs?: Summary; closedBeforeAck?: number; revoked?: number };
  if (r.scenario === 'revocation' && rev.requestToCloseMs && rev.ackToCloseMs) {
    lines.push(`revocation         request → close ${latency(rev.requestToCloseMs)}; ack → close p50 ${f(rev.ackToCloseMs.p50)} ms, max ${f(rev.ackToCloseMs.max)} ms; closed before ack ${rev.closedBeforeAck}/${rev.revoked}`);
  }
  const m = r.memory;
  lines.push(
    `sim memory         ${f(m.baselineRssMiB)} → ${f(m.connectedRssMiB)} MiB RSS; ${f(m.perDeviceKiB)} KiB per connected device (connections alone ${f(m.connectionPerDeviceKiB)} KiB, JS heap ${f(m.heapPerDeviceKiB)} KiB)${m.collected ? '' : '; without a GC first (run node with --expose-gc for a steadier figure)'}`,
  );
  lines.push('criteria');
  const width = Math.max(...r.criteria.map((c) => c.name.length));
  for (const c of r.criteria) lines.push(`  ${c.passed ? 'pass' : 'FAIL'}  ${c.name.padEnd(width)}  ${c.actual}`);
  if (files.length) lines.push(`reports            ${files.join(', ')}`);
  return lines.join('\n');
}
