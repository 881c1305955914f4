// aedes-persistence-redis ships no type declarations; this is the part of it we use.
declare module 'aedes-persistence-redis' {
  import type { Redis } from 'ioredis';

  interface RedisPersistenceOptions {
    /** A connection made by the caller, who then owns its lifecycle. */
    conn?: Redis;
    /** At most this many queued messages are delivered to a client at CONNECT. */
    maxSessionDelivery?: number;
    /** Seconds an offline (queued) message is kept; 0 keeps it for good. */
    packetTTL?: (packet: { topic: string; qos: number }) => number;
  }

  interface RedisPersistence {
    destroy(): Promise<void>;
  }

  export default function persistence(options?: RedisPersistenceOptions): RedisPersistence;
}
