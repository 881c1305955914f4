// docs/api.md names every error code the API answers and every code a claim reply carries.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { CLAIM_SESSION_ERRORS } from '../../broker/fleet-topics/claim.js';
import { API_ERRORS } from '../../provisioning/api/errors.js';
import { CLAIM_ERRORS } from '../../provisioning/claims/errors.js';

const doc = readFileSync(new URL('../../../docs/api.md', import.meta.url), 'utf8');
const undocumented = (codes: string[]) => codes.filter((code) => !doc.includes(`\`${code}\``));

describe('docs/api.md', () => {
  it('lists every API error code', () => {
    assert.deepEqual(undocumented(Object.keys(API_ERRORS)), []);
  });

  it('lists every code a claim request can be rejected with', () => {
    assert.deepEqual(undocumented([...Object.keys(CLAIM_SESSION_ERRORS), ...Object.keys(CLAIM_ERRORS)]), []);
  });
});
