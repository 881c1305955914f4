import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runInNewContext } from 'node:vm';
import { LatencyHistogram } from '../../firmware-sim/histogram.js';
import { chartLibrary, renderHtml } from '../../firmware-sim/report/html.js';
import { formatSummary } from '../../firmware-sim/report/table.js';
import { writeReports } from '../../firmware-sim/report/write.js';
import type { RunReport } from '../../firmware-sim/run.js';

function histogram(...samples: number[]) {
  const h = new LatencyHistogram();
  for (const s of samples) h.record(s);
  return h;
}

/** A small finished run, as runScenario would report it. */
function report(overrides: Partial<RunReport> = {}): RunReport {
  const connect = histogram(40, 55, 61, 70);
  const acks = histogram(0.9, 1.1, 1.4, 12);
  return {
    scenario: 'rotation',
    passed: false,
    startedAt: '2030-01-01T10:00:00.000Z',
    finishedAt: '2030-01-01T10:00:12.500Z',
    durationS: 12.5,
    options: { devices: 4, ratePerDevice: 2, durationMs: 10_000, qos: 1, revoke: 1, dropIntervalMs: 5000, drainMs: 10_000, concurrency: 8, idPrefix: 'sim-test', apiUrl: 'https://127.0.0.1:1', mqttUrl: 'mqtts://127.0.0.1:2' },
    criteria: [
      { name: 'no failed connects', passed: false, actual: '1 failed' },
      { name: 'no QoS 1 reading lost', passed: true, actual: '0 lost, 2 duplicates of 80' },
    ],
    devices: { requested: 4, enrolled: 4, onlineAtEnd: 4, stoppedBy: {} },
    enroll: {
      via: 'claim',
      ok: 4,
      failed: 0,
      failures: {},
      perSecond: 40,
      durationS: 0.1,
      latencyMs: histogram(20, 30).summary(),
      claim: {
        batch: 'sim-test-claim',
        rateLimit: { perSecond: 400, burst: 400 },
        pace: { perSecond: 400, burst: 200 },
        sessions: 5,
        accepted: { create: 4, register: 4 },
        requestsPerSecond: 80,
        refusals: { claim_rate_limited: 1 },
        paced: { requests: 2, waitS: 0.01 },
        latencyMs: { create: histogram(8, 9).summary(), register: histogram(3, 4).summary() },
      },
    },
    connect: { ok: 8, failed: 1, failures: { server_unavailable: 1 }, attempts: 9, reconnects: 4, drops: 0, online: 4, phaseS: 0.2, perSecond: 20, peakPerSecond: 4, latencyMs: connect.summary() },
    publish: { qos: 1, sent: 80, completed: 80, failed: 0, perSecond: 8, latencyMs: acks.summary(), received: 80, lost: 0, duplicates: 2, abandoned: 0, lostExamples: [], deliveryLatencyMs: acks.summary() },
    renewal: {
      via: ['mqtt', 'https'],
      renewed: 4,
      failed: 1,
      latencyMs: histogram(9, 11, 30, 32).summary(),
      channels: {
        mqtt: { renewed: 2, failed: 0, failures: {}, latencyMs: histogram(9, 11).summary() },
        https: { renewed: 2, failed: 1, failures: { reply_timeout: 1 }, latencyMs: histogram(30, 32).summary() },
      },
    },
    commands: { sent: 0, received: 0 },
    memory: { collected: true, baselineRssMiB: 90, connectedRssMiB: 91, perDeviceKiB: 256, connectionPerDeviceKiB: 120, heapPerDeviceKiB: 30 },
    refusals: { server_unavailable: 1 },
    series: { bucketS: 1, enrolled: [4, 0], attempts: [4, 5], connects: [4, 4], connectFailures: [0, 1], drops: [0, 0], published: [8, 8], completed: [8, 8], online: [4, 4] },
    histograms: { connectMs: connect.buckets(4), completionMs: acks.buckets(4), deliveryMs: acks.buckets(4), renewalMs: { mqtt: histogram(9, 11).buckets(4), https: histogram(30, 32).buckets(4) } },
    marks: [{ at: 0.1, label: 'connecting' }, { at: 0.4, label: 'rotation' }],
    // A hostile string where the page would show it: it must stay text.
    details: { note: '</script><script>alert(1)</script>' },
    ...overrides,
  };
}

/** The JSON the HTML page carries, read back as the page's script reads it. */
function embeddedData(html: string): unknown {
  const match = html.match(/<script type="application\/json" id="report-data">([\s\S]*?)<\/script>/);
  assert.ok(match, 'the report data is inline');
  return JSON.parse(match[1]!);
}

/** The titles of the charts the page's own script draws, run with a stand-in document and Chart.js. */
function chartTitles(html: string): string[] {
  const page = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]!).at(-1)!;
  const titles: string[] = [];
  const element = (tag: string) => ({ className: '', appendChild: () => undefined, set textContent(text: string) { if (tag === 'h3') titles.push(text); } });
  const data = JSON.stringify(embeddedData(html));
  const document = { getElementById: (id: string) => (id === 'report-data' ? { textContent: data } : { appendChild: () => undefined }), createElement: element };
  runInNewContext(page, { document, Chart: class {} });
  return titles;
}

describe('sim reports', () => {
  it('HTML: self-contained, with the chart library and the data inline', () => {
    const r = report();
    const html = renderHtml(r);
    const library = chartLibrary();
    assert.ok(library.length > 100_000, 'the Chart.js UMD build');
    assert.ok(html.includes(library.slice(0, 500)) && html.includes(library.slice(-500)), 'Chart.js is embedded whole');
    assert.doesNotMatch(html, /<script[^>]*\bsrc=/i, 'no script is fetched');
    assert.doesNotMatch(html, /<link[^>]*\bhref=/i, 'no stylesheet is fetched');
    assert.deepEqual(embeddedData(html), JSON.parse(JSON.stringify(r)));
    assert.match(html, /new Chart\(/);
    assert.match(html, /Connects per second over time/);
    assert.match(html, /Refusals and failed attempts by reason/);
    assert.match(html, /FAILED/);
  });

  it('HTML: says how the devices enrolled and renewed, with the figures of each way', () => {
    const html = renderHtml(report());
    const section = html.slice(html.indexOf('<h2>Enrollment and renewal</h2>'), html.indexOf('<h2>Charts</h2>'));
    assert.match(section, /<td>enrolled by claim<\/td><td>4 ok, 0 failed<\/td><td>40\.0 claims\/s<\/td>/);
    assert.match(section, /<td>claim batch sim-test-claim<\/td><td>5 sessions; limit 400\/s \(bursts of 400\), paced at 400\/s \(bursts of 200\)<\/td>/);
    assert.match(section, /<td>claim_rate_limited 1<\/td>/);
    assert.match(section, /<td>renewed over mqtt<\/td><td>2 ok, 0 failed<\/td>/);
    assert.match(section, /<td>renewed over https<\/td><td>2 ok, 1 failed<\/td><td><\/td><td>p50 [0-9.]+ ms, p99 [0-9.]+ ms<\/td><td>reply_timeout 1<\/td>/);
    // The page script, run against a stand-in for the page and Chart.js, draws claims per
    // second, one renewal latency chart per channel, and the claim refusals.
    const titles = chartTitles(html);
    for (const title of ['Claims per second over time (devices enrolled by claim)', 'Renewal latency over mqtt (request → new certificate)', 'Renewal latency over https (request → new certificate)', 'Claim refusals by reason (claim session CONNECTs and rejected requests)']) {
      assert.ok(titles.includes(title), `${title} in ${titles.join(' | ')}`);
    }
    const throughApi = chartTitles(renderHtml(report({ enroll: { ...report().enroll, via: 'api', claim: undefined } })));
    assert.ok(throughApi.includes('Enrollments per second over time') && !throughApi.some((t) => t.startsWith('Claim')), throughApi.join(' | '));
  });

  it('HTML: nothing in the data can end the script element early', () => {
    const html = renderHtml(report());
    assert.equal(html.match(/<script\b/gi)?.length, 3, 'the data, the library and the page script');
    assert.equal(html.match(/<\/script>/gi)?.length, 3);
  });

  it('JSON: written beside the HTML, named after the scenario and start time, equal to the report', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sim-report-'));
    try {
      const r = report();
      const files = await writeReports(r, join(dir, 'nested'));
      assert.deepEqual((await readdir(join(dir, 'nested'))).sort(), ['rotation-2030-01-01T10-00-00-000Z.html', 'rotation-2030-01-01T10-00-00-000Z.json']);
      const json = JSON.parse(await readFile(files.json, 'utf8'));
      assert.deepEqual(json, JSON.parse(JSON.stringify(r)));
      for (const key of ['scenario', 'passed', 'criteria', 'enroll', 'connect', 'publish', 'memory', 'refusals', 'series', 'histograms']) assert.ok(key in json, key);
      assert.equal(json.connect.failed, 1);
      assert.equal(json.publish.lost, 0);
      assert.ok(json.memory.perDeviceKiB > 0);
      assert.ok(Array.isArray(json.series.connects));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('summary table: one line per subject and a line per criterion', () => {
    const text = formatSummary(report(), ['a.json', 'a.html']);
    assert.match(text, /^scenario\s+rotation — FAILED/m);
    assert.match(text, /^connected\s+8 ok, 1 failed; 4 reconnects, 0 drops/m);
    assert.match(text, /^published\s+80\/80 completed, 0 failed; QoS 1/m);
    assert.match(text, /^delivered\s+80 readings to the backend; 0 lost, 2 duplicates/m);
    assert.match(text, /^refusals\s+server_unavailable 1$/m);
    assert.match(text, /^enrolled\s+by claim: 4 ok, 0 failed; 40\.0 claims\/s/m);
    assert.match(text, /^claims\s+batch sim-test-claim \(limit 400\/s, bursts of 400; paced at 400\/s, bursts of 200\): 5 sessions, 4 create-from-csr and 4 register accepted \(80\.0 requests\/s\).* 2 requests paced \(0\.0 s waited\); refusals claim_rate_limited 1$/m);
    assert.match(text, /^renewed via mqtt\s+2 ok, 0 failed; latency p50 [0-9.]+ ms/m);
    assert.match(text, /^renewed via https\s+2 ok, 1 failed \(reply_timeout 1\); latency p50 [0-9.]+ ms/m);
    assert.match(text, /^sim memory .* 256\.0 KiB per connected device/m);
    assert.match(text, /^ {2}FAIL {2}no failed connects\s+1 failed$/m);
    assert.match(text, /^ {2}pass {2}no QoS 1 reading lost/m);
    assert.match(text, /^reports\s+a\.json, a\.html$/m);
  });
});
