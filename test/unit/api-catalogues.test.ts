// The API's catalogues — error codes and roles — and their documentation stay equal, and no
// route can be added without saying who may call it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import { PUBLIC, access, requireAccessDeclarations } from '../../provisioning/api/access.js';
import { API_ERRORS } from '../../provisioning/api/errors.js';
import { ALL_ROLES } from '../../registry/roles.js';

const doc = readFileSync(new URL('../../../docs/api.md', import.meta.url), 'utf8');

describe('docs/api.md', () => {
  const errors = doc.split('\n## Errors\n')[1] ?? '';
  const documented = new Map<string, number>();
  for (const row of errors.matchAll(/^\| (\d{3}) \| (.*) \|$/gm)) for (const c of row[2]!.matchAll(/`([a-z_]+)`/g)) documented.set(c[1]!, Number(row[1]));

  it('lists every error code under its status', () => {
    const wrong = Object.entries(API_ERRORS)
      .filter(([code, info]) => documented.get(code) !== info.status)
      .map(([code, info]) => `${code} ${info.status} (documented: ${documented.get(code) ?? 'missing'})`);
    assert.deepEqual(wrong, []);
  });

  it('lists no code the API lacks', () => {
    assert.deepEqual([...documented.keys()].filter((c) => !(c in API_ERRORS)), []);
  });

  it('describes every role', () => {
    const roles = doc.split('\n### Roles\n')[1]?.split('\n#')[0] ?? '';
    assert.deepEqual(ALL_ROLES.filter((r) => !new RegExp(`^\\| \`${r}\` \\|`, 'm').test(roles)), []);
  });
});

describe('access declarations', () => {
  it('refuses to register a route that does not declare who may call it', async () => {
    const app = Fastify();
    requireAccessDeclarations(app);
    app.get('/declared', access(PUBLIC), () => 'ok');
    assert.throws(() => app.get('/forgotten', () => 'oops'), /declares no access/);
    await app.close();
  });
});
