// Loading the project's native addons (binding.gyp), which `npm ci` builds into build/Release
// at the package root. Each has a slower path in JavaScript, so a missing addon is a reason to
// report, not an error.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const load = createRequire(import.meta.url);

/** The addon `name` (its binding.gyp target), or why it could not be loaded. */
export function loadAddon<Binding>(name: string): { binding?: Binding; unavailable?: string } {
  // This file runs from dist/registry. A file path, not the URL's pathname, which keeps a
  // space in the checkout's path as %20.
  const path = fileURLToPath(new URL(`../../build/Release/${name}.node`, import.meta.url));
  try {
    return { binding: load(path) as Binding };
  } catch (error) {
    return { unavailable: error instanceof Error ? error.message : String(error) };
  }
}
