// The run as one HTML file a person opens anywhere, offline: Chart.js (MIT) is embedded from
// its UMD build in node_modules, the figures travel as inline JSON, and a short script turns
// them into charts — connects per second over time, latency histograms, refusals by reason.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { RunReport } from '../run.js';
import { formatSummary } from './table.js';

let chartJs: string | undefined;

/** The Chart.js UMD bundle. Its package exports do not list the file, so it is found beside the main entry. */
export function chartLibrary(): string {
  chartJs ??= readFileSync(join(dirname(createRequire(import.meta.url).resolve('chart.js')), 'chart.umd.min.js'), 'utf8');
  return chartJs;
}

/** Text inside <script> ends at the first "</script"; escaping the slash keeps the code the same. */
const scriptSafe = (code: string) => code.replace(/<\/(script)/gi, '<\\/$1');
/** JSON inside <script type="application/json">: no "<" at all, so nothing can close the element. */
const jsonSafe = (value: unknown) => JSON.stringify(value).replace(/</g, '\\u003c');
const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const STYLE = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #1d2330; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
.verdict { display: inline-block; padding: .1rem .6rem; border-radius: .3rem; color: #fff; font-weight: 600; }
.pass { background: #2e7d32; } .fail { background: #c62828; }
table { border-collapse: collapse; margin: .5rem 0; } td, th { padding: .25rem .8rem; border-bottom: 1px solid #e3e6ec; text-align: left; vertical-align: top; }
td.ok { color: #2e7d32; font-weight: 600; } td.bad { color: #c62828; font-weight: 600; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 1.5rem; }
.chart { border: 1px solid #e3e6ec; border-radius: .4rem; padding: .8rem; } .chart h3 { margin: 0 0 .5rem; font-size: .95rem; }
.chart canvas { max-height: 300px; } pre { background: #f5f6f8; padding: 1rem; overflow-x: auto; font-size: 12px; }
.muted { color: #667; }`;

// Runs in the page: reads the inline report and draws each chart that has data.
const PAGE_SCRIPT = `
const report = JSON.parse(document.getElementById('report-data').textContent);
const charts = document.getElementById('charts');
const colors = { enrolled: '#5d4037', connects: '#2e7d32', connectFailures: '#c62828', drops: '#ef6c00', online: '#1565c0', published: '#6a1b9a', completed: '#00838f', bars: '#3949ab' };
function panel(title) {
  const div = document.createElement('div'); div.className = 'chart';
  const h = document.createElement('h3'); h.textContent = title; div.appendChild(h);
  const canvas = document.createElement('canvas'); div.appendChild(canvas); charts.appendChild(div);
  return canvas;
}
// Vertical lines at the run's phase changes (enrolling, connecting, the scenario, draining).
const phaseLines = { id: 'phaseLines', afterDatasetsDraw(chart) {
  const x = chart.scales.x; const { top, bottom } = chart.chartArea; const ctx = chart.ctx;
  ctx.save(); ctx.strokeStyle = '#9aa0ac'; ctx.fillStyle = '#667'; ctx.setLineDash([4, 4]); ctx.font = '11px system-ui';
  for (const mark of report.marks) { const px = x.getPixelForValue(mark.at); if (px < x.left || px > x.right) continue;
    ctx.beginPath(); ctx.moveTo(px, top); ctx.lineTo(px, bottom); ctx.stroke(); ctx.fillText(mark.label, px + 3, top + 10); }
  ctx.restore(); } };
function seriesPoints(name) { return (report.series[name] || []).map((y, i) => ({ x: i * report.series.bucketS, y })); }
function timeChart(title, names, labels, extra) {
  if (!names.some((n) => (report.series[n] || []).some((v) => v > 0))) return;
  new Chart(panel(title), { type: 'line', plugins: [phaseLines], data: { datasets: names.map((n, i) => ({ label: labels[i], data: seriesPoints(n),
      borderColor: colors[n], backgroundColor: colors[n], pointRadius: 0, borderWidth: 1.5, stepped: true, yAxisID: n === 'online' ? 'y2' : 'y' })) },
    options: { animation: false, parsing: false, scales: { x: { type: 'linear', title: { display: true, text: 'seconds since start' } },
      y: { beginAtZero: true, title: { display: true, text: 'per second' } }, ...(extra || {}) } } });
}
function histogram(title, buckets, unit) {
  if (!buckets || buckets.length === 0) return;
  const label = (b) => b.from < 1 ? b.from.toFixed(2) + '–' + b.to.toFixed(2) : b.from < 100 ? b.from.toFixed(1) + '–' + b.to.toFixed(1) : Math.round(b.from) + '–' + Math.round(b.to);
  new Chart(panel(title), { type: 'bar', data: { labels: buckets.map(label), datasets: [{ label: 'samples', data: buckets.map((b) => b.count), backgroundColor: colors.bars }] },
    options: { animation: false, plugins: { legend: { display: false } }, scales: { x: { title: { display: true, text: unit } }, y: { beginAtZero: true, title: { display: true, text: 'count' } } } } });
}
// Signed samples (ack → close may be negative) into equal-width bins.
function linearBins(samples, bins) {
  if (!samples || samples.length === 0) return [];
  const lo = Math.min(...samples), hi = Math.max(...samples); const width = (hi - lo) / bins || 1;
  const out = Array.from({ length: bins }, (_, i) => ({ from: lo + i * width, to: lo + (i + 1) * width, count: 0 }));
  for (const s of samples) out[Math.min(bins - 1, Math.floor((s - lo) / width))].count++;
  return out;
}
timeChart('Connects per second over time', ['connects', 'connectFailures', 'drops', 'online'], ['connects', 'failed attempts', 'drops', 'devices online (right axis)'],
  { y2: { position: 'right', beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: 'online' } } });
timeChart(report.enroll.via === 'claim' ? 'Claims per second over time (devices enrolled by claim)' : 'Enrollments per second over time', ['enrolled'], ['devices enrolled']);
timeChart('Telemetry per second over time', ['published', 'completed'], ['published', report.publish.qos === 1 ? 'acknowledged' : 'written']);
histogram('Connect latency (TCP + TLS + CONNACK)', report.histograms.connectMs, 'ms');
histogram(report.publish.qos === 1 ? 'Publish → PUBACK latency (QoS 1)' : 'Publish → written latency (QoS 0)', report.histograms.completionMs, 'ms');
histogram('Reading taken → received by the backend', report.histograms.deliveryMs, 'ms');
for (const [channel, buckets] of Object.entries(report.histograms.renewalMs || {})) histogram('Renewal latency over ' + channel + ' (request → new certificate)', buckets, 'ms');
function reasonChart(title, counts) {
  const rows = Object.entries(counts || {}).sort((a, b) => b[1] - a[1]);
  if (rows.length) new Chart(panel(title), { type: 'bar', data: { labels: rows.map((r) => r[0]),
    datasets: [{ label: 'attempts', data: rows.map((r) => r[1]), backgroundColor: colors.connectFailures }] },
    options: { indexAxis: 'y', animation: false, plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true } } } });
}
reasonChart('Refusals and failed attempts by reason', report.refusals);
if (report.enroll.claim) reasonChart('Claim refusals by reason (claim session CONNECTs and rejected requests)', report.enroll.claim.refusals);
if (report.details && report.details.samples) {
  histogram('Revocation: API request → device sees the close', linearBins(report.details.samples.requestToCloseMs, 20), 'ms');
  histogram('Revocation: API acknowledgement → device sees the close (negative: closed first)', linearBins(report.details.samples.ackToCloseMs, 20), 'ms');
}
`;

const ms = (n: number) => (Number.isFinite(n) ? `${n.toFixed(1)} ms` : '–');
const counts = (c: Record<string, number>) => Object.entries(c).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';

/** How the devices came by their certificates and renewed them, with the figures of each way. */
function identityRows(report: RunReport): string {
  const e = report.enroll;
  const rows: string[][] = [[e.via === 'claim' ? 'enrolled by claim' : 'enrolled through the API', `${e.ok} ok, ${e.failed} failed`, `${e.perSecond.toFixed(1)} ${e.via === 'claim' ? 'claims' : 'devices'}/s`, `p50 ${ms(e.latencyMs.p50)}, p99 ${ms(e.latencyMs.p99)}`, counts(e.failures)]];
  if (e.claim) {
    const c = e.claim;
    rows.push([`claim batch ${c.batch}`, `${c.sessions} sessions; limit ${c.rateLimit.perSecond}/s (bursts of ${c.rateLimit.burst}), paced at ${c.pace.perSecond}/s (bursts of ${c.pace.burst})`, `${c.requestsPerSecond.toFixed(1)} requests/s; ${c.paced.requests} paced, ${c.paced.waitS.toFixed(1)} s waited`, `create p50 ${ms(c.latencyMs.create.p50)}, register p50 ${ms(c.latencyMs.register.p50)}`, counts(c.refusals)]);
  }
  for (const [channel, c] of Object.entries(report.renewal.channels)) rows.push([`renewed over ${channel}`, `${c.renewed} ok, ${c.failed} failed`, '', `p50 ${ms(c.latencyMs.p50)}, p99 ${ms(c.latencyMs.p99)}`, counts(c.failures)]);
  const head = '<tr><th>how</th><th>outcome</th><th>rate</th><th>latency</th><th>refusals</th></tr>';
  return head + rows.map((cells) => `<tr>${cells.map((cell) => `<td>${escapeHtml(cell)}</td>`).join('')}</tr>`).join('\n');
}

export function renderHtml(report: RunReport): string {
  const title = `fleet sim — ${report.scenario} — ${report.passed ? 'passed' : 'failed'}`;
  const criteria = report.criteria
    .map((c) => `<tr><td class="${c.passed ? 'ok' : 'bad'}">${c.passed ? 'pass' : 'FAIL'}</td><td>${escapeHtml(c.name)}</td><td>${escapeHtml(c.actual)}</td></tr>`)
    .join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>fleet sim: ${escapeHtml(report.scenario)} <span class="verdict ${report.passed ? 'pass' : 'fail'}">${report.passed ? 'PASSED' : 'FAILED'}</span></h1>
<p class="muted">${escapeHtml(report.startedAt)} · ${report.devices.requested} devices · ${report.durationS.toFixed(1)} s · QoS ${report.options.qos} · broker ${escapeHtml(report.options.mqttUrl)}</p>
<p class="muted">enrolled ${report.enroll.via === 'claim' ? 'by claim' : 'through the operator API'} · renewed over ${escapeHtml(report.renewal.via.join(', '))}</p>
<h2>Pass criteria</h2>
<table>${criteria}</table>
<h2>Enrollment and renewal</h2>
<table>${identityRows(report)}</table>
<h2>Charts</h2>
<div class="charts" id="charts"></div>
<h2>Summary</h2>
<pre>${escapeHtml(formatSummary(report))}</pre>
<script type="application/json" id="report-data">${jsonSafe(report)}</script>
<script>${scriptSafe(chartLibrary())}</script>
<script>${scriptSafe(PAGE_SCRIPT)}</script>
</body>
</html>
`;
}
