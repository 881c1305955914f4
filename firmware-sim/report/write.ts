// Where a run's reports go: DIR/<scenario>-<timestamp>.json and .html.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunReport } from '../run.js';
import { renderHtml } from './html.js';

export const DEFAULT_REPORT_DIR = 'sim-reports';

export function reportBaseName(report: Pick<RunReport, 'scenario' | 'startedAt'>): string {
  return `${report.scenario}-${report.startedAt.replace(/[:.]/g, '-')}`;
}

/** Writes the JSON and HTML reports; returns their paths. */
export async function writeReports(report: RunReport, dir: string): Promise<{ json: string; html: string }> {
  await mkdir(dir, { recursive: true });
  const base = join(dir, reportBaseName(report));
  const files = { json: `${base}.json`, html: `${base}.html` };
  await writeFile(files.json, `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(files.html, renderHtml(report));
  return files;
}
