// The one place that loads @peculiar/x509. It needs reflect-metadata loaded first and a
// WebCrypto provider; Node's own is used, so no second crypto implementation is pulled in.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

// The library types name the DOM `Crypto`; Node's webcrypto is that object.
x509.cryptoProvider.set(webcrypto);

export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;
export { x509, webcrypto };
