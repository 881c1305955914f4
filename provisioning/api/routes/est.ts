// EST, Enrollment over Secure Transport (RFC 7030), for the clients that speak it:
// /cacerts (§4.1), /simpleenroll (§4.2.1) and /simplereenroll (§4.2.2). Requests are base64
// DER PKCS#10 (application/pkcs10), answers base64 DER certs-only CMS
// (application/pkcs7-mime). Enrollment is a station's (or an operator's) with the
// provisioner role, for the device the CSR's CN names (registered if new); re-enrollment is
// the device's own, with its current certificate, under the renewal rules. As everywhere
// here, the certificate names the registry's device, whatever else the CSR says.
import type { FastifyInstance, RawServerBase } from 'fastify';
import { isDeviceId } from '../../../registry/ids.js';
import { CsrError } from '../../pki/csr.js';
import { base64Lines, certificatesIn, derOf, toPem } from '../../pki/pem.js';
import { certsOnly } from '../../pki/pkcs7.js';
import { x509 } from '../../pki/x509.js';
import type { Enrollment } from '../../service.js';
import { PROVISIONERS, PUBLIC, RENEWING_DEVICES, access } from '../access.js';
import type { ApiDeps } from '../context.js';
import { ApiError } from '../errors.js';
import { renewingDevice } from './renewal.js';

export const EST_PATH = '/.well-known/est';

/** RFC 7030 §4.2.1: the body is base64 DER; a PEM armour some clients add is accepted too. */
function csrPemOf(request: { headers: { 'content-type'?: string }; body: unknown }): { pem: string; der: Buffer } {
  if (!request.headers['content-type']?.startsWith('application/pkcs10')) throw new ApiError('unsupported_media_type', 'send base64 DER PKCS#10 with Content-Type: application/pkcs10');
  const text = typeof request.body === 'string' ? request.body : '';
  const base64 = text.replace(/-----(BEGIN|END) (NEW )?CERTIFICATE REQUEST-----/g, '').replace(/\s+/g, '');
  if (base64 === '' || !/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) throw new CsrError('csr_malformed', 'the body is not base64 DER PKCS#10');
  const der = Buffer.from(base64, 'base64');
  return { pem: toPem('CERTIFICATE REQUEST', der), der };
}


const CACERTS_TYPE = 'application/pkcs7-mime';
const ISSUED_TYPE = 'application/pkcs7-mime; smime-type=certs-only';
const EST_HEADERS = { 'content-transfer-encoding': 'base64', 'cache-control': 'no-store' };
/** A certs-only response body: base64 DER, in lines of 64. */
const certsBody = (ders: Buffer[]) => base64Lines(certsOnly(ders));
const issuedBody = (e: Enrollment) => certsBody([derOf(e.certificatePem)]);

export function estRoutes<S extends RawServerBase>(app: FastifyInstance<S>, deps: ApiDeps): void {
  app.addContentTypeParser('application/pkcs10', { parseAs: 'string' }, (_request, body, done) => done(null, body));

  // §4.1.3: the CA certificates a client needs, root first: the bundle devices trust.
  app.get(`${EST_PATH}/cacerts`, access(PUBLIC), (_request, reply) => reply.type(CACERTS_TYPE).headers(EST_HEADERS).send(certsBody(certificatesIn(deps.caBundle()).map(derOf))));

  app.post(`${EST_PATH}/simpleenroll`, access(PROVISIONERS), async (request, reply) => {
    const csr = csrPemOf(request);
    let commonName: string | undefined;
    try {
      commonName = new x509.Pkcs10CertificateRequest(csr.der).subjectName.getField('CN')[0];
    } catch (cause) {
      throw new CsrError('csr_malformed', 'DER does not parse', { cause });
    }
    if (!isDeviceId(commonName)) throw new ApiError('invalid_device_id', 'the CSR subject CN names the device to enroll');
    const enrolled = await deps.provisioning.enrollRegistering(commonName, csr.pem, request.actor!);
    return reply.type(ISSUED_TYPE).headers(EST_HEADERS).send(issuedBody(enrolled));
  });

  app.post(`${EST_PATH}/simplereenroll`, access(RENEWING_DEVICES), async (request, reply) => {
    const device = renewingDevice(request.principal);
    const renewed = await deps.provisioning.renew(device.record.serial, csrPemOf(request).pem, request.actor!);
    return reply.type(ISSUED_TYPE).headers(EST_HEADERS).send(issuedBody(renewed));
  });
}
