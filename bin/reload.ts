// Reloading without a restart: the trust bundle (the registry's CAs and pki/trust.d/), the
// server certificate and key, and operators' CRLs (pki/crls/). Each reloads when its files
// change, when the registry's CAs change (trust), or on request; live sessions whose
// certificate is no longer trusted are closed with their reason, the others are untouched.
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, promises as fs, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { DeviceBroker } from '../broker/broker.js';
import type { MutualTlsListener } from '../broker/listener.js';
import { importCrls, type CrlImport, type CrlRevocations } from '../provisioning/crl-import.js';
import { withIntermediates } from '../provisioning/pki/served-chain.js';
import type { Trust } from '../provisioning/trust.js';
import type { Clock } from '../registry/clock.js';
import type { Registry } from '../registry/registry.js';
import type { DataLayout } from './data-dir.js';

export interface ReloadSummary {
  trust: { trustedCas: number; sessionsClosed: number };
  server: { serial: string; notAfter: string };
  crls: CrlImport;
}

export interface ReloadTargets {
  layout: DataLayout;
  trust: Trust;
  listener: MutualTlsListener;
  broker: DeviceBroker;
  registry: Registry;
  crlRevocations: CrlRevocations;
  /** The API's TLS context: its server certificate is the broker's, its client trust the broker's too. */
  api: { setTrust(caPem: string): void; setServerCredentials(credentials: { key: string; cert: string }): void };
  log: Logger;
  clock: Clock;
}

export const trustDir = (layout: DataLayout) => join(layout.pki.dir, 'trust.d');
export const crlDir = (layout: DataLayout) => join(layout.pki.dir, 'crls');

export class Reloader {
  readonly #watchers: FSWatcher[] = [];
  readonly #pending = new Map<string, NodeJS.Timeout>();

  constructor(private readonly t: ReloadTargets) {}

  async reloadTrust(): Promise<ReloadSummary['trust']> {
    await this.t.trust.refresh();
    const pem = this.t.trust.bundles.clientTrustPem;
    this.t.listener.setTrust(pem);
    this.t.api.setTrust(pem);
    const closed = this.t.broker.trustChanged(pem);
    const trustedCas = (pem.match(/BEGIN CERTIFICATE/g) ?? []).length;
    this.t.log.info({ event: 'trust_reloaded', trustedCas, sessionsClosed: closed.length }, 'trust bundle reloaded');
    return { trustedCas, sessionsClosed: closed.length };
  }

  async reloadServer(): Promise<ReloadSummary['server']> {
    const { serverCert, serverKey } = this.t.layout.pki;
    const [cert, key] = await Promise.all([fs.readFile(serverCert, 'utf8'), fs.readFile(serverKey, 'utf8')]);
    // Refuse a pair that does not belong together rather than break every handshake.
    const certificate = new X509Certificate(cert);
    const fromKey = createPublicKey(createPrivateKey(key)).export({ type: 'spki', format: 'der' });
    if (!certificate.publicKey.export({ type: 'spki', format: 'der' }).equals(fromKey)) throw new Error('server.key does not match server.pem; kept the current pair');
    const served = withIntermediates(cert, this.t.trust.bundles.caBundlePem);
    this.t.listener.setServerCredentials({ key, cert: served });
    this.t.api.setServerCredentials({ key, cert: served });
    this.t.log.info({ event: 'server_certificate_reloaded', serial: certificate.serialNumber, notAfter: certificate.validTo }, 'server certificate reloaded');
    return { serial: certificate.serialNumber.toLowerCase(), notAfter: new Date(certificate.validTo).toISOString() };
  }

  reloadCrls(): Promise<CrlImport> {
    return importCrls(crlDir(this.t.layout), this.t.registry, this.t.crlRevocations, this.t.log, this.t.clock);
  }

  async reloadAll(): Promise<ReloadSummary> {
    return { server: await this.reloadServer(), crls: await this.reloadCrls(), trust: await this.reloadTrust() };
  }

  /** Reloads on file changes, a moment after the last one (editors write in several steps). */
  watch(): void {
    for (const dir of [trustDir(this.t.layout), crlDir(this.t.layout)]) if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
    const on = (dir: string, matches: (file: string) => boolean, reload: () => Promise<unknown>, what: string) => {
      const watcher = watch(dir, (_event, file) => {
        if (file && !matches(String(file))) return;
        clearTimeout(this.#pending.get(what));
        this.#pending.set(
          what,
          setTimeout(() => {
            reload().catch((err: unknown) => this.t.log.error({ err, event: 'reload_failed', what }, `${what} reload failed`));
          }, 300),
        );
      });
      watcher.on('error', (err) => this.t.log.error({ err, event: 'watch_failed', dir }, 'cannot watch for changes'));
      this.#watchers.push(watcher);
    };
    const server = ['server.pem', 'server.key'];
    on(this.t.layout.pki.dir, (f) => server.includes(f), () => this.reloadServer(), 'server certificate');
    on(trustDir(this.t.layout), () => true, () => this.reloadTrust(), 'trust');
    on(crlDir(this.t.layout), () => true, () => this.reloadCrls(), 'crls');
  }

  stop(): void {
    for (const watcher of this.#watchers) watcher.close();
    for (const timer of this.#pending.values()) clearTimeout(timer);
  }
}
