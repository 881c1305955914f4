// The simulator talks to the service only the way a factory tool or a device would: the
// public HTTPS API, trusting the fleet's CA bundle.
import { request } from 'node:https';

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

  #call(method: string, path: string, body?: unknown): Promise<unknown> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = request(
        new URL(path, this.options.baseUrl),
        {
          method,
          ca: this.options.ca,
          headers: {
            accept: 'application/json',
            ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
            ...(this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}),
          },
        },
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
