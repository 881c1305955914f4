// Hand-made MQTT 3.1.1 packets on a raw TLS socket, for tests that need exact control over
// what reaches the broker and how it is chunked.
import { once } from 'node:events';
import tls, { type TLSSocket } from 'node:tls';
import type { Identity } from './mqtt.js';

function remainingLength(n: number): Buffer {
  const bytes: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    bytes.push(byte);
  } while (n > 0);
  return Buffer.from(bytes);
}

function utf8(value: string): Buffer {
  const body = Buffer.from(value, 'utf8');
  const length = Buffer.alloc(2);
  length.writeUInt16BE(body.length);
  return Buffer.concat([length, body]);
}

export function packet(firstByte: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([firstByte]), remainingLength(body.length), body]);
}

export function connectPacket(clientId: string, keepaliveSeconds = 60): Buffer {
  const keepalive = Buffer.alloc(2);
  keepalive.writeUInt16BE(keepaliveSeconds);
  // protocol name, level 4 (3.1.1), flags: clean session
  return packet(0x10, Buffer.concat([utf8('MQTT'), Buffer.from([4, 0x02]), keepalive, utf8(clientId)]));
}

export function publishPacket(topic: string, payload: Buffer | string): Buffer {
  return packet(0x30, Buffer.concat([utf8(topic), Buffer.from(payload)]));
}

export function subscribePacket(messageId: number, filter: string, qos = 0): Buffer {
  const id = Buffer.alloc(2);
  id.writeUInt16BE(messageId);
  return packet(0x82, Buffer.concat([id, utf8(filter), Buffer.from([qos])]));
}

/** Opens a TLS connection as `identity` and sends CONNECT; resolves after the CONNACK bytes arrived. */
export async function rawConnect(port: number, ca: string, identity: Identity): Promise<TLSSocket> {
  const socket = tls.connect({ host: '127.0.0.1', port, ca, key: identity.keyPem, cert: identity.certPem });
  await once(socket, 'secureConnect');
  socket.write(connectPacket(identity.id));
  const [connack] = (await once(socket, 'data')) as [Buffer];
  if (connack[0] !== 0x20 || connack[3] !== 0) throw new Error(`CONNACK refused: ${connack.toString('hex')}`);
  return socket;
}
