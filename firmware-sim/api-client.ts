// The simulator talks to the service only the way a factory tool or a device would: the
// public HTTPS API, trusting the fleet's CA bundle — as an operator with its token, or as a
// device with its own certificate over mutual TLS.
import { request, type RequestOptions } from 'node:https';
import type { SecureContext } from 'node:tls';

export interface ApiClientOptions {
  baseUrl: string;
  /** PEM of the CAs that sign the API's server certificate. */
  ca: string;
  token?: string;
}

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface EnrolledCertificate {
  serial: string;
  fingerprint: string;
  certificate: string;
  chain: string;
  notBefore: string;
  notAfter: string;
}

/** A claim batch as `POST /v1/claim-batches` answers it (without a CSR: the claim key comes once, here). */
export interface CreatedClaimBatch {
  id: string;
  clientIdPrefix: string;
  rateLimit: { perSecond: number; burst: number };
  certificate: string;
  chain: string;
  key: string;
  notAfter: string;
}

export interface NewClaimBatch {
  name: string;
  template: { deviceId: string; parameters: Record<string, { pattern?: string; required?: boolean }>; attributes?: Record<string, unknown>; groups?: string[] };
  rateLimit?: { perSecond: number; burst: number };
  validitySeconds?: number;
}

export interface DeviceView {
  id: string;
  status: string;
  connected: boolean;
  certificates: { serial: string; status: string; notBefore: string; notAfter: string }[];
}

export class ApiClient {
  constructor(private readonly options: ApiClientOptions) {}

  createDevice(id: string, attributes?: Record<string, unknown>): Promise<unknown> {
    return this.#call('POST', '/v1/devices', { id, ...(attributes ? { attributes } : {}) });
  }

  /** Sends the CSR; `ca` names the issuing CA (the service's default when absent). */
  enroll(id: string, csr: string, ca?: string): Promise<EnrolledCertificate> {
    return this.#call('POST', `/v1/devices/${encodeURIComponent(id)}/certificates`, { csr, ...(ca ? { ca } : {}) }) as Promise<EnrolledCertificate>;
  }

  createCa(name: string, parent?: string): Promise<{ id: string }> {
    return this.#call('POST', '/v1/cas', { name, ...(parent ? { parent } : {}) }) as Promise<{ id: string }>;
  }

  revokeCa(id: string, reason?: string): Promise<{ revoked: { cas: string[]; certificates: number } }> {
    return this.#call('POST', `/v1/cas/${encodeURIComponent(id)}/revoke`, reason ? { reason } : {}) as Promise<{ revoked: { cas: string[]; certificates: number } }>;
  }

  createGroup(id: string, policy: { publish: string[]; subscribe: string[] }): Promise<unknown> {
    return this.#call('POST', '/v1/groups', { id, policy });
  }

  addGroupMember(groupId: string, deviceId: string): Promise<unknown> {
    return this.#call('PUT', `/v1/groups/${encodeURIComponent(groupId)}/members/${encodeURIComponent(deviceId)}`);
  }

  revokeDevice(id: string, reason?: string): Promise<unknown> {
    return this.#call('POST', `/v1/devices/${encodeURIComponent(id)}/revoke`, reason ? { reason } : {});
  }

  /** One certificate, by serial (hex); the device and its other certificates stay as they are. */
  revokeCertificate(serial: string, reason?: string): Promise<unknown> {
    return this.#call('POST', `/v1/certificates/${encodeURIComponent(serial)}/revoke`, reason ? { reason } : {});
  }

  getDevice(id: string): Promise<DeviceView> {
    return this.#call('GET', `/v1/devices/${encodeURIComponent(id)}`) as Promise<DeviceView>;
  }

  createClaimBatch(batch: NewClaimBatch): Promise<CreatedClaimBatch> {
    return this.#call('POST', '/v1/claim-batches', batch) as Promise<CreatedClaimBatch>;
  }

  /**
   * `POST /v1/renew` as the device itself: its current certificate (in `secureContext`, with
   * the fleet's CA bundle) is the credential, no token. A connection of its own each time —
   * a pooled one could carry another device's certificate.
   */
  renewAsDevice(secureContext: SecureContext, csr: string): Promise<EnrolledCertificate> {
    return this.#call('POST', '/v1/renew', { csr }, { secureContext, agent: false }) as Promise<EnrolledCertificate>;
  }

  #call(method: string, path: string, body?: unknown, asDevice?: { secureContext: SecureContext; agent: false }): Promise<unknown> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const options: RequestOptions & { secureContext?: SecureContext } = {
      method,
      ...(asDevice ?? { ca: this.options.ca }),
      headers: {
        accept: 'application/json',
        ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
        ...(this.options.token && !asDevice ? { authorization: `Bearer ${this.options.token}` } : {}),
      },
    };
    return new Promise((resolve, reject) => {
      const req = request(
        new URL(path, this.options.baseUrl),
        options,
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown;
            try {
              json = text ? JSON.parse(text) : undefined;
            } catch {
              json = undefined;
            }
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) return resolve(json);
            const error = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
            reject(new ApiError(status, error?.code ?? 'http_error', error?.message ?? `HTTP ${status}`));
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }
}
