// CRLs as a relying party checks them: fetched from the distribution point each certificate
// names, one per issuing CA and signed by it, with a nextUpdate, rebuilt on every
// revocation, and accepted by `openssl verify -crl_check` (and -crl_check_all up the chain).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { startFleet, type EnrolledDevice, type TestFleet } from '../support/fleet.js';
import { ecKeyWithCsr } from '../support/keys.js';

const run = promisify(execFile);
const sh = async (script: string) => (await run('sh', ['-c', `{ ${script}; } 2>&1`])).stdout;

describe('CRLs', { timeout: 90_000 }, () => {
  let fleet: TestFleet;
  let work: string;
  let bundle: string;
  const path = (name: string) => join(work, name);

  before(async () => {
    fleet = await startFleet();
    work = await mkdtemp(join(tmpdir(), 'crl-test-'));
    bundle = join(fleet.dir, 'pki', 'ca-bundle.pem');
  });
  after(async () => {
    await fleet.close();
    await rm(work, { recursive: true, force: true });
  });

  /** The CRL a certificate names as its distribution point, fetched with curl, as PEM. */
  const crlOf = async (certPath: string, name: string) => {
    const ext = await sh(`openssl x509 -in ${certPath} -noout -ext crlDistributionPoints`);
    const url = /URI:(\S+)/.exec(ext)?.[1];
    assert.ok(url, `a distribution point in ${certPath}`);
    await sh(`curl -sS --fail --cacert ${bundle} -o ${path(`${name}.der`)} ${url}`);
    await sh(`openssl crl -inform DER -in ${path(`${name}.der`)} -out ${path(`${name}.pem`)}`);
    return { url, pem: path(`${name}.pem`) };
  };
  const save = async (name: string, pem: string) => {
    await writeFile(path(name), pem);
    return path(name);
  };
  const verify = (cert: string, crls: string[], all = false, trust = bundle) => sh(`openssl verify ${all ? '-crl_check_all' : '-crl_check'} -CAfile ${trust} ${crls.map((c) => `-CRLfile ${c}`).join(' ')} ${cert} || true`);
  const crlNumber = async (pem: string) => Number((await sh(`openssl crl -in ${pem} -noout -crlnumber`)).split('=')[1]);

  it('lists a revocation at the URL the certificate names; openssl accepts the good certificate and refuses the revoked one', async () => {
    const good = await fleet.enroll('crl-good');
    const bad = await fleet.enroll('crl-bad');
    const goodPath = await save('good.pem', good.certPem);
    const badPath = await save('bad.pem', bad.certPem);
    const before = await crlOf(goodPath, 'before');
    assert.match(before.url, /\/v1\/crl$/, 'the first issuing CA keeps the contract’s /v1/crl');

    await fleet.api(`/v1/certificates/${bad.serial}/revoke`, { body: { reason: 'keyCompromise' } });
    const crl = await crlOf(badPath, 'after');
    assert.ok((await crlNumber(crl.pem)) > (await crlNumber(before.pem)), 'rebuilt on the revocation, with a higher CRL number');
    const text = await sh(`openssl crl -in ${crl.pem} -CAfile ${bundle} -noout -text`);
    assert.match(text, /verify OK/, 'signed by the issuing CA');
    assert.match(text, /Next Update: /);
    assert.match(text, new RegExp(`Serial Number: ${bad.serial.toUpperCase()}[\\s\\S]*Key Compromise`));
    assert.match(await verify(goodPath, [crl.pem]), /good\.pem: OK/);
    assert.match(await verify(badPath, [crl.pem]), /certificate revoked/);
  });

  it('keeps one CRL per issuing CA, each signed by its CA, checked up the chain with -crl_check_all', async () => {
    assert.equal((await fleet.api('/v1/cas', { body: { name: 'line-b' } })).status, 201);
    const enrollUnder = async (id: string): Promise<EnrolledDevice> => {
      await fleet.api('/v1/devices', { body: { id } });
      const key = await ecKeyWithCsr();
      const r = await fleet.api(`/v1/devices/${id}/certificates`, { body: { csr: key.csrPem, ca: 'line-b' } });
      return { id, keyPem: key.keyPem, certPem: r.json.certificate, serial: r.json.serial, fingerprint: r.json.fingerprint };
    };
    const [ok, revoked] = await Promise.all([enrollUnder('crl-b-good'), enrollUnder('crl-b-bad')]);
    await fleet.api(`/v1/certificates/${revoked.serial}/revoke`, { method: 'POST' });
    const okPath = await save('b-good.pem', ok.certPem);
    const revokedPath = await save('b-bad.pem', revoked.certPem);
    const caPem = (await fleet.api('/v1/cas/line-b')).json.certificate as string;
    const caPath = await save('line-b-ca.pem', caPem);
    const lineB = await crlOf(okPath, 'line-b');
    assert.match(lineB.url, /\/v1\/cas\/line-b\/crl$/);
    const root = await crlOf(caPath, 'root'); // the sub-CA names its parent's CRL
    assert.match(root.url, /\/v1\/cas\/root\/crl$/);
    assert.match(await sh(`openssl crl -in ${lineB.pem} -CAfile ${bundle} -noout`), /verify OK/);
    assert.doesNotMatch(await sh(`openssl crl -in ${lineB.pem} -noout -text`), new RegExp(ok.serial.toUpperCase()));
    assert.match(await verify(okPath, [lineB.pem, root.pem], true), /b-good\.pem: OK/);
    assert.match(await verify(revokedPath, [lineB.pem, root.pem], true), /certificate revoked/);

    // The CA itself revoked: it goes on the root's CRL, and its devices fail up the chain for
    // a relying party that still holds the chain (the CA bundle no longer lists the CA).
    const chain = await save('chain.pem', `${fleet.ca}${caPem}`);
    await fleet.api('/v1/cas/line-b/revoke', { method: 'POST' });
    const rootAfter = await crlOf(caPath, 'root-after');
    const caSerial = (await sh(`openssl x509 -in ${caPath} -noout -serial`)).trim().split('=')[1]!;
    assert.match(await sh(`openssl crl -in ${rootAfter.pem} -noout -text`), new RegExp(`Serial Number: ${caSerial}`));
    // The cascade put the device itself on its CA's CRL (depth 0); and the CA is on the root's
    // (depth 1), which a relying party holding an older CRL of the CA still finds.
    assert.match(await verify(okPath, [await crlOf(okPath, 'line-b-after').then((c) => c.pem), rootAfter.pem], true, chain), /error 23 at 0 depth lookup: certificate revoked/);
    assert.match(await verify(okPath, [lineB.pem, rootAfter.pem], true, chain), /error 23 at 1 depth lookup: certificate revoked/);
  });
});
