// The native addon that clears OpenSSL's error queue (native/openssl-errors.c, built by
// `npm ci`). Without it, the TLS edge reads peers through getPeerCertificate, which clears
// the queue itself at about seven times the CPU (registry/peer-certificate.ts).
import { loadAddon } from './native-addon.js';

const addon = loadAddon<{ clearErrors: () => void }>('openssl_errors');

/** Clears this thread's OpenSSL error queue; undefined when the addon is not built. */
export const clearOpenSslErrors: (() => void) | undefined = addon.binding?.clearErrors;
/** Why the addon is not in use, for the service's start-up log. */
export const opensslErrorsUnavailable: string | undefined = addon.unavailable;
