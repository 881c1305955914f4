// The only way in for devices (DESIGN invariant 8): MQTT over TLS with a client
// certificate requested. The handshake does not reject a bad certificate itself; the chain
// verdict is carried to CONNECT, where the device gets a CONNACK code it will not retry on,
// instead of a dropped socket it would retry forever.
import { constants } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo, Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import type { DeviceBroker } from './broker.js';
import { peerFactsOf } from './peer.js';

export interface TlsMaterial {
  key: string;
  /** The server certificate followed by its intermediates (see provisioning/pki/served-chain.ts). */
  cert: string;
  /** CAs that device certificates must chain to. */
  ca: string;
}

export interface ListenerOptions {
  handshakeTimeoutMs: number;
  /**
   * TLS session tickets, so a device may resume its TLS session. Off by default: OpenSSL
   * writes each TLS 1.3 ticket by re-encoding and re-parsing the session, client certificate
   * included, twice per handshake, which more than doubles what a fresh connection costs
   * beyond the handshake itself; most devices hold one connection for hours and reconnect
   * after the tickets' five minutes have run out anyway. Admission runs again on a resumed
   * session either way.
   */
  sessionTickets: boolean;
}

export interface MutualTlsListener {
  readonly port: number;
  /** Replaces the CAs device certificates must chain to; new handshakes use them at once. */
  setTrust(caPem: string): void;
  /** Replaces the server certificate (with its intermediates) and key; live sessions are untouched. */
  setServerCredentials(credentials: { key: string; cert: string }): void;
  close(): Promise<void>;
}

// TLS 1.2 only with forward-secret AEAD suites; TLS 1.3 (preferred, negotiated when the
// client has it) has only such suites anyway.
const TLS12_CIPHERS = 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305';

/** When the TCP connection under a TLS socket was accepted, for the handshake histogram. */
const ACCEPTED_AT = Symbol('acceptedAt');
type AcceptedSocket = Socket & { [ACCEPTED_AT]?: number };

/**
 * The listener's TLS settings for given credentials. setSecureContext replaces the whole
 * context: every option goes in each time, or a missing `ca` would fall back to the public roots.
 */
export function mutualTlsContext(material: TlsMaterial, sessionTickets: boolean): tls.SecureContextOptions {
  return {
    key: material.key,
    cert: material.cert,
    ca: material.ca,
    minVersion: 'TLSv1.2',
    ciphers: TLS12_CIPHERS,
    honorCipherOrder: true,
    ...(sessionTickets ? {} : { secureOptions: constants.SSL_OP_NO_TICKET }),
  };
}

/** Requested, not required: the chain's verdict is carried to CONNECT (see the top of this file). */
export const CLIENT_CERTIFICATE_REQUESTED = { requestCert: true, rejectUnauthorized: false } as const;

export async function listenMutualTls(broker: DeviceBroker, material: TlsMaterial, address: { host: string; port: number }, options: ListenerOptions): Promise<MutualTlsListener> {
  let current = { ...material };
  const context = () => mutualTlsContext(current, options.sessionTickets);
  // A handshake that stalls holds a socket and its TLS state; give up on it early.
  const server = tls.createServer({ ...context(), ...CLIENT_CERTIFICATE_REQUESTED, handshakeTimeout: options.handshakeTimeoutMs });

  // One listener function for every socket rather than a closure each: ten thousand idle
  // devices would otherwise hold ten thousand of them.
  const sockets = new Set<TLSSocket>();
  function forget(this: TLSSocket) {
    sockets.delete(this);
  }
  server.on('connection', (socket: AcceptedSocket) => {
    socket[ACCEPTED_AT] = performance.now();
  });
  server.on('secureConnection', (socket: TLSSocket) => {
    // A server-side TLS socket keeps the TCP socket it wraps as _parent.
    const started = (socket as TLSSocket & { _parent?: AcceptedSocket })._parent?.[ACCEPTED_AT];
    if (started !== undefined) broker.telemetry.handshake((performance.now() - started) / 1000);
    sockets.add(socket);
    socket.on('close', forget);
    // MQTT is request and answer (CONNACK, PUBACK, a $fleet reply): Nagle's algorithm would
    // hold an answer back until the device's next packet or 40 ms, whichever comes first.
    // Writes a turn of the event loop makes go out together anyway (coalesce-writes.ts).
    socket.setNoDelay(true);
    broker.handle(socket, peerFactsOf(socket));
  });
  server.on('tlsClientError', (error: NodeJS.ErrnoException, socket: TLSSocket) => {
    const timedOut = error.code === 'ERR_TLS_HANDSHAKE_TIMEOUT';
    broker.telemetry.refused(timedOut ? 'handshake_timeout' : 'tls_handshake_failed', { peer: `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`, detail: error.code ?? error.message });
    // With a listener here Node leaves the socket open: a client that stalls its handshake
    // would otherwise keep it for good.
    socket.destroy();
  });

  server.listen(address.port, address.host);
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    setTrust(caPem) {
      current = { ...current, ca: caPem };
      server.setSecureContext(context());
    },
    setServerCredentials({ key, cert }) {
      current = { ...current, key, cert };
      server.setSecureContext(context());
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
