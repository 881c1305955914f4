// The reason catalogue and its documentation stay equal, in both directions.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ALL_REASONS, REASONS, connackFor } from '../../broker/reasons.js';

const doc = readFileSync(new URL('../../../docs/reasons.md', import.meta.url), 'utf8');
const documented = [...doc.matchAll(/^### ([a-z_]+)$/gm)].map((m) => m[1]);

describe('docs/reasons.md', () => {
  it('documents every reason in the catalogue', () => {
    assert.deepEqual(ALL_REASONS.filter((r) => !documented.includes(r)), []);
  });

  it('documents no reason the catalogue lacks', () => {
    assert.deepEqual(documented.filter((r) => !(r! in REASONS)), []);
  });

  it('states the CONNACK code of each connect-stage reason', () => {
    for (const reason of ALL_REASONS) {
      const info: { stage: string; connack?: number } = REASONS[reason];
      if (!info.connack) continue;
      const section = doc.split(`### ${reason}\n`)[1]?.split('\n### ')[0] ?? '';
      assert.match(section, new RegExp(`^CONNACK ${connackFor(reason)}\\.`), reason);
    }
  });
});
