// DESIGN.md: provisioning and broker depend on registry; registry depends on neither, and
// provisioning not on broker (types both need live in registry/). Checked on the sources.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name));
}

/** `file: import` for every import (static, dynamic or re-export) of one of these top-level folders. */
function importsOf(dir: string, forbidden: string[]): string[] {
  const found: string[] = [];
  for (const file of sources(dir)) {
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(/(?:from|import\()\s*'([^']+)'/g)) {
      const target = relative(root, join(file, '..', match[1]!));
      if (forbidden.some((f) => target === f || target.startsWith(`${f}/`))) found.push(`${relative(root, file)}: ${match[1]}`);
    }
  }
  return found;
}

describe('dependency direction', () => {
  it('provisioning/ imports nothing from broker/', () => {
    assert.deepEqual(importsOf('provisioning', ['broker']), []);
  });

  it('registry/ imports nothing from broker/ or provisioning/', () => {
    assert.deepEqual(importsOf('registry', ['broker', 'provisioning']), []);
  });
});
