// The API's error catalogue and the table in docs/api.md stay equal: every code the API can
// answer is documented with its status, and the document lists no code the API lacks.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { API_ERRORS } from '../../provisioning/api/errors.js';

const doc = readFileSync(new URL('../../../docs/api.md', import.meta.url), 'utf8');
const errorsSection = doc.split(/^## Errors$/m)[1] ?? '';
const documented = new Map<string, number>();
for (const [, status, codes] of errorsSection.matchAll(/^\| (\d{3}) \| (.*) \|$/gm)) {
  for (const [, code] of codes!.matchAll(/`([a-z_]+)`/g)) documented.set(code!, Number(status));
}

describe('docs/api.md errors', () => {
  it('documents every API error code with its status', () => {
    const wrong = Object.entries(API_ERRORS)
      .filter(([code, info]) => documented.get(code) !== info.status)
      .map(([code, info]) => `${code}: ${info.status}, documented ${documented.get(code) ?? 'nowhere'}`);
    assert.deepEqual(wrong, []);
  });

  it('documents no code the API lacks', () => {
    assert.deepEqual([...documented.keys()].filter((code) => !(code in API_ERRORS)), []);
  });
});
