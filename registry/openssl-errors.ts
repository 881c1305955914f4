// The native addon that clears OpenSSL's error queue (native/openssl-errors.c, built by
// `npm ci`). Without it, the TLS edge reads peers through getPeerCertificate, which clears
// the queue itself at about seven times the CPU (registry/peer-certificate.ts).
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

// node-gyp builds into build/Release at the package root; this file runs from dist/registry.
const ADDON = fileURLToPath(new URL('../../build/Release/openssl_errors.node', import.meta.url));

function load(): { clear?: () => void; unavailable?: string } {
  try {
    const binding = createRequire(import.meta.url)(ADDON) as { clearErrors: () => void };
    return { clear: () => binding.clearErrors() };
  } catch (error) {
    return { unavailable: error instanceof Error ? error.message : String(error) };
  }
}

const loaded = load();

/** Clears this thread's OpenSSL error queue; undefined when the addon is not built. */
export const clearOpenSslErrors: (() => void) | undefined = loaded.clear;
/** Why the addon is not in use, for the service's start-up log. */
export const opensslErrorsUnavailable: string | undefined = loaded.unavailable;
