#!/usr/bin/env node
// The `fleet` command. The TypeScript sources are compiled to dist/ by `npm ci` (prepare)
// and by `npm run build`.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/bin/cli.js', import.meta.url);
if (!existsSync(entry)) {
  console.error('fleet: dist/ is missing; run `npm run build` (npm ci does it for you)');
  process.exit(1);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
