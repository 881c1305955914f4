// The only way in for devices (DESIGN invariant 8): MQTT over TLS with a client
// certificate requested. The handshake does not reject a bad certificate itself; the chain
// verdict is carried to CONNECT, where the device gets a CONNACK code it will not retry on,
// instead of a dropped socket it would retry forever.
import { once } from 'node:events';
import type { AddressInfo, Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import type { DeviceBroker } from './broker.js';
import { peerFactsOf } from './peer.js';

export interface TlsMaterial {
  key: string;
  cert: string;
  /** CAs that device certificates must chain to. */
  ca: string;
}

export interface MutualTlsListener {
  readonly port: number;
  /** Replaces the CAs device certificates must chain to; new handshakes use them at once. */
  setTrust(caPem: string): void;
  /** Replaces the server certificate and key; live sessions are untouched. */
  setServerCredentials(credentials: { key: string; cert: string }): void;
  close(): Promise<void>;
}

// TLS 1.2 only with forward-secret AEAD suites; TLS 1.3 (preferred, negotiated when the
// client has it) has only such suites anyway.
const TLS12_CIPHERS = 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305';

export async function listenMutualTls(broker: DeviceBroker, material: TlsMaterial, address: { host: string; port: number }, handshakeTimeoutMs: number): Promise<MutualTlsListener> {
  let current = { ...material };
  // setSecureContext replaces the whole context: every option goes in each time, or a missing
  // `ca` would fall back to the public roots.
  const context = (): tls.SecureContextOptions => ({ key: current.key, cert: current.cert, ca: current.ca, minVersion: 'TLSv1.2', ciphers: TLS12_CIPHERS, honorCipherOrder: true });
  // A handshake that stalls holds a socket and its TLS state; give up on it early.
  const server = tls.createServer({ ...context(), requestCert: true, rejectUnauthorized: false, handshakeTimeout: handshakeTimeoutMs });

  // The TLS socket and the TCP one it wraps share their remote address and port.
  const acceptedAt = new Map<string, number>();
  const peerOf = (s: Socket) => `${s.remoteAddress ?? 'unknown'}:${s.remotePort ?? 0}`;
  server.on('connection', (socket: Socket) => {
    const key = peerOf(socket);
    acceptedAt.set(key, performance.now());
    socket.once('close', () => acceptedAt.delete(key));
  });

  const sockets = new Set<TLSSocket>();
  server.on('secureConnection', (socket: TLSSocket) => {
    const started = acceptedAt.get(peerOf(socket));
    if (started !== undefined) broker.telemetry.handshake((performance.now() - started) / 1000);
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    broker.handle(socket, peerFactsOf(socket));
  });
  server.on('tlsClientError', (error: NodeJS.ErrnoException, socket: TLSSocket) => {
    const timedOut = error.code === 'ERR_TLS_HANDSHAKE_TIMEOUT';
    broker.telemetry.refused(timedOut ? 'handshake_timeout' : 'tls_handshake_failed', { peer: peerOf(socket), detail: error.code ?? error.message });
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
