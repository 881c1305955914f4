// A reference server for `npm run bench -- floor`, run as a process of its own so that its
// CPU is read from /proc like the brokers': what a held mutual-TLS connect costs on Node.js
// before any of our broker runs.
//
//   node floor-server.js node-tls|aedes <directory with server.key, server.pem, ca.pem>
//
// node-tls: node:tls with our listener's settings (broker/listener.ts), a CONNACK written by
// hand for the CONNECT, nothing else. aedes: Aedes as installed here (with our patch,
// broker/patches/) with its defaults, memory persistence and no authentication, on the same
// TLS server. Prints {"port":N} once it listens.
import { Aedes } from 'aedes';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import tls, { type TLSSocket } from 'node:tls';
import { CLIENT_CERTIFICATE_REQUESTED, mutualTlsContext } from '../../broker/listener.js';

// CONNACK, accepted, no session present (MQTT 3.1.1 §3.2).
const CONNACK_ACCEPTED = Buffer.from([0x20, 0x02, 0x00, 0x00]);

const [kind, dir] = process.argv.slice(2);
if ((kind !== 'node-tls' && kind !== 'aedes') || !dir) {
  console.error('usage: floor-server.js node-tls|aedes <directory with server.key, server.pem, ca.pem>');
  process.exit(2);
}
const file = (name: string) => readFileSync(join(dir, name), 'utf8');
const server = tls.createServer({ ...mutualTlsContext({ key: file('server.key'), cert: file('server.pem'), ca: file('ca.pem') }, false), ...CLIENT_CERTIFICATE_REQUESTED });

let handle: (socket: TLSSocket) => void;
if (kind === 'aedes') {
  const aedes = await Aedes.createBroker();
  handle = (socket) => aedes.handle(socket);
} else {
  handle = (socket) => {
    socket.on('error', () => socket.destroy());
    socket.once('data', () => socket.write(CONNACK_ACCEPTED));
  };
}
server.on('secureConnection', (socket: TLSSocket) => {
  socket.setNoDelay(true);
  handle(socket);
});
server.on('tlsClientError', (_error, socket: TLSSocket) => socket.destroy());
process.once('SIGTERM', () => process.exit(0));
server.listen(0, '127.0.0.1');
await once(server, 'listening');
console.log(JSON.stringify({ port: (server.address() as AddressInfo).port }));
