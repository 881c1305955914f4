// EST (RFC 7030) end to end, driven with curl and openssl exactly as an EST client does:
// /cacerts, /simpleenroll by a station, /simplereenroll by the device itself, and the
// refusals — a bad CSR, the wrong principal, a revoked certificate.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { x509 } from '../../provisioning/pki/x509.js';
import { addStation, startFleet, type StationFiles, type TestFleet } from '../support/fleet.js';
import { end } from '../support/mqtt.js';
import { eventually } from '../support/wait.js';

const run = promisify(execFile);
const sh = async (script: string) => (await run('sh', ['-c', script])).stdout;

describe('EST (RFC 7030)', { timeout: 90_000 }, () => {
  let fleet: TestFleet;
  let work: string;
  let station: StationFiles;
  let est: string;
  let ca: string;

  before(async () => {
    fleet = await startFleet();
    work = await mkdtemp(join(tmpdir(), 'est-test-'));
    station = await addStation(fleet.dir, 'est-line', ['provisioner'], fleet.service.apiUrl);
    est = `${fleet.service.apiUrl}/.well-known/est`;
    ca = join(fleet.dir, 'pki', 'ca-bundle.pem');
  });
  after(async () => {
    await fleet.close();
    await rm(work, { recursive: true, force: true });
  });

  const path = (name: string) => join(work, name);
  /** A key and a base64 DER CSR for it, as `openssl req` makes them. */
  const keyAndCsr = async (name: string, subject: string) => {
    await sh(`openssl ecparam -name prime256v1 -genkey -noout -out ${path(`${name}.key`)}`);
    await sh(`openssl req -new -key ${path(`${name}.key`)} -subj '${subject}' -outform DER | base64 > ${path(`${name}.b64`)}`);
  };
  /** curl's status and body file for a POST of a base64 CSR. */
  const post = async (endpoint: string, csrFile: string, client: string[], contentType = 'application/pkcs10') =>
    (await sh(`curl -sS --cacert ${ca} ${client.join(' ')} -H 'Content-Type: ${contentType}' --data-binary @${csrFile} -o ${path('out')} -w '%{http_code}' ${est}/${endpoint}`)).trim();
  const asStation = ['--cert', '', '--key', ''];
  const codeOf = async () => JSON.parse(await readFile(path('out'), 'utf8')).error.code as string;

  it('serves /cacerts as base64 certs-only PKCS#7 that openssl reads', async () => {
    const headers = await sh(`curl -sS --cacert ${ca} -D - -o ${path('cacerts.b64')} ${est}/cacerts`);
    assert.match(headers, /content-type: application\/pkcs7-mime/i);
    assert.match(headers, /content-transfer-encoding: base64/i);
    const certs = await sh(`base64 -d ${path('cacerts.b64')} | openssl pkcs7 -inform DER -print_certs`);
    const bundle = fleet.ca.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!;
    assert.deepEqual(certs.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g), bundle, 'the CA bundle, root first');
  });

  it('enrolls with /simpleenroll as a station: the device the CSR names, registered, certified and admitted', async () => {
    asStation[1] = station.certPath;
    asStation[3] = station.keyPath;
    await keyAndCsr('est-1', '/CN=est-device-1/O=Factory');
    assert.equal(await post('simpleenroll', path('est-1.b64'), asStation), '200');
    await sh(`base64 -d ${path('out')} | openssl pkcs7 -inform DER -print_certs -out ${path('est-1.pem')}`);
    assert.match(await sh(`openssl verify -x509_strict -purpose sslclient -CAfile ${ca} ${path('est-1.pem')}`), /: OK/);
    const cert = new x509.X509Certificate(await readFile(path('est-1.pem'), 'utf8'));
    assert.equal(cert.subject, 'CN=est-device-1', 'the registry’s identity: the CSR’s O= is not copied');
    const view = await fleet.api('/v1/devices/est-device-1');
    assert.deepEqual(view.json.certificates.map((c: { serial: string }) => c.serial), [cert.serialNumber.toLowerCase()]);
    const client = await fleet.connect({ id: 'est-device-1', certPem: cert.toString('pem'), keyPem: await readFile(path('est-1.key'), 'utf8') });
    await end(client);
  });

  it('re-enrolls with /simplereenroll as the device itself, under the renewal rules', async () => {
    const old = new x509.X509Certificate(await readFile(path('est-1.pem'), 'utf8'));
    await keyAndCsr('est-1b', '/CN=est-device-1');
    assert.equal(await post('simplereenroll', path('est-1b.b64'), ['--cert', path('est-1.pem'), '--key', path('est-1.key')]), '200');
    await sh(`base64 -d ${path('out')} | openssl pkcs7 -inform DER -print_certs -out ${path('est-1b.pem')}`);
    const renewed = new x509.X509Certificate(await readFile(path('est-1b.pem'), 'utf8'));
    assert.equal(renewed.subject, 'CN=est-device-1');
    const record = await fleet.api(`/v1/certificates/${renewed.serialNumber.toLowerCase()}`);
    assert.equal(record.json.status, 'ACTIVE');
    const client = await fleet.connect({ id: 'est-device-1', certPem: renewed.toString('pem'), keyPem: await readFile(path('est-1b.key'), 'utf8') });
    await eventually(async () => (await fleet.api(`/v1/certificates/${old.serialNumber.toLowerCase()}`)).json.status === 'INACTIVE', 5000, 'the old certificate retired');
    await end(client);
  });

  it('refuses a bad CSR with its code', async () => {
    await writeFile(path('garbage.b64'), 'this is not base64 at all!\n');
    assert.equal(await post('simpleenroll', path('garbage.b64'), asStation), '400');
    assert.equal(await codeOf(), 'csr_malformed');
    await writeFile(path('not-a-csr.b64'), Buffer.from('hello, EST').toString('base64'));
    assert.equal(await post('simpleenroll', path('not-a-csr.b64'), asStation), '400');
    assert.equal(await codeOf(), 'csr_malformed');
    // A CSR whose signature does not match its content.
    const der = Buffer.from(await readFile(path('est-1b.b64'), 'utf8'), 'base64');
    der[der.length - 10]! ^= 0x01;
    await writeFile(path('tampered.b64'), der.toString('base64'));
    assert.equal(await post('simpleenroll', path('tampered.b64'), asStation), '400');
    assert.equal(await codeOf(), 'csr_signature_invalid');
    await keyAndCsr('bad-cn', '/CN=not a device id');
    assert.equal(await post('simpleenroll', path('bad-cn.b64'), asStation), '400');
    assert.equal(await codeOf(), 'invalid_device_id');
    assert.equal(await post('simpleenroll', path('est-1b.b64'), asStation, 'text/plain'), '415');
    assert.equal(await codeOf(), 'unsupported_media_type');
    assert.equal((await fleet.api('/v1/devices/est-device-1')).json.certificates.length, 2, 'nothing more issued');
  });

  it('refuses the wrong principal, and a revoked certificate', async () => {
    await keyAndCsr('est-2', '/CN=est-device-2');
    assert.equal(await post('simpleenroll', path('est-2.b64'), []), '401');
    assert.equal(await codeOf(), 'token_missing');
    // A device may re-enroll itself, not enroll others; a station enrolls, it has nothing to re-enroll.
    assert.equal(await post('simpleenroll', path('est-2.b64'), ['--cert', path('est-1b.pem'), '--key', path('est-1b.key')]), '403');
    assert.equal(await codeOf(), 'forbidden');
    assert.equal(await post('simplereenroll', path('est-2.b64'), asStation), '403');
    assert.equal(await codeOf(), 'forbidden');
    const serial = new x509.X509Certificate(await readFile(path('est-1b.pem'), 'utf8')).serialNumber.toLowerCase();
    await fleet.api(`/v1/certificates/${serial}/revoke`, { method: 'POST' });
    assert.equal(await post('simplereenroll', path('est-2.b64'), ['--cert', path('est-1b.pem'), '--key', path('est-1b.key')]), '401');
    assert.equal(await codeOf(), 'client_certificate_revoked');
    assert.equal((await fleet.api('/v1/devices/est-device-2')).status, 404, 'no device registered by a refused call');
  });
});
