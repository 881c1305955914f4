// Nodes of a cluster starting together on one data directory whose server certificate is due
// for renewal (27 days from its end): one of them reissues it, under the
// cluster's lock, and every node serves that certificate with its own key beside it. Joining
// the cluster adds no process-wide handler that would swallow unhandled rejections.
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { startService, type RunningService } from '../../bin/service.js';
import { pkiPaths, reissueServerCertificate } from '../../provisioning/pki/hierarchy.js';
import { importPrivateKey } from '../../provisioning/pki/keys.js';
import { CaSigner } from '../../provisioning/pki/signer.js';
import { x509 } from '../../provisioning/pki/x509.js';
import { startRedis, type RedisServer } from '../support/cluster.js';
import { LogCapture } from '../support/logs.js';
import { postgresSchema } from '../support/stores.js';

const DAY_MS = 24 * 60 * 60 * 1000;

function servedFingerprint(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.destroy();
    });
    socket.on('error', reject);
  });
}

describe('cluster nodes starting together', { timeout: 120_000 }, () => {
  let dir: string;
  let redis: RedisServer;
  let schema: { url: string; drop(): Promise<void> };
  const nodes: RunningService[] = [];
  const start = (name: string) => startService({ dataDir: dir, database: schema.url, redis: redis.url, nodeName: name, host: '127.0.0.1', mqttPort: 0, apiPort: 0, logLevel: 'warn', logDestination: new LogCapture() });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-cluster-start-'));
    [redis, schema] = await Promise.all([startRedis(), postgresSchema()]);
    // The data directory and the schema, made once; then a server certificate issued 370 days
    // ago, which the next start must replace.
    await (await start('maker')).close();
    const pki = pkiPaths(join(dir, 'pki'));
    const issuing = await CaSigner.create(new x509.X509Certificate(await readFile(pki.issuingCert, 'utf8')), await importPrivateKey(await readFile(pki.issuingKey, 'utf8')));
    await reissueServerCertificate(pki, issuing, () => new Date(Date.now() - 370 * DAY_MS));
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.close()));
    await redis.stop();
    await schema.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('reissues a due server certificate once, and every node serves it with the key that belongs to it', async () => {
    const { serverCert: certFile, serverKey: keyFile, caBundle } = pkiPaths(join(dir, 'pki'));
    const before = new X509Certificate(await readFile(certFile, 'utf8'));
    const rejectionHandlers = process.listenerCount('unhandledRejection');
    nodes.push(...(await Promise.all(['start-1', 'start-2', 'start-3'].map((name) => start(name)))));

    const after = new X509Certificate(await readFile(certFile, 'utf8'));
    assert.notEqual(after.serialNumber, before.serialNumber, 'reissued');
    const key = createPrivateKey(await readFile(keyFile, 'utf8'));
    assert.deepEqual(createPublicKey(key).export({ type: 'spki', format: 'der' }), after.publicKey.export({ type: 'spki', format: 'der' }), 'the key beside the certificate is its own');
    const ca = await readFile(caBundle, 'utf8');
    for (const node of nodes) {
      assert.equal(await servedFingerprint(node.mqttPort, ca), after.fingerprint256, `${node.nodeName} MQTT`);
      assert.equal(await servedFingerprint(node.apiPort, ca), after.fingerprint256, `${node.nodeName} API`);
    }
    assert.equal(process.listenerCount('unhandledRejection'), rejectionHandlers);
  });
});
