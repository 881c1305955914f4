// A small HTTPS client for tests: status, headers and body, with the fleet CA trusted.
import { request } from 'node:https';

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- response bodies are checked by the tests
}

export interface HttpRequest {
  method?: string;
  token?: string;
  /** Sent as JSON unless `raw` is given. */
  body?: unknown;
  raw?: string | Buffer;
  headers?: Record<string, string>;
  /** A client certificate and its key (PEM), for mutual TLS. */
  cert?: string;
  key?: string;
}

export function httpsRequest(url: string, ca: string, r: HttpRequest = {}): Promise<HttpResult> {
  const payload = r.raw !== undefined ? Buffer.from(r.raw) : r.body !== undefined ? Buffer.from(JSON.stringify(r.body)) : undefined;
  const headers: Record<string, string | number> = { ...(r.headers ?? {}) };
  if (r.body !== undefined && r.raw === undefined) headers['content-type'] = 'application/json';
  if (payload) headers['content-length'] = payload.length;
  if (r.token) headers.authorization = `Bearer ${r.token}`;
  return new Promise((resolve, reject) => {
    const req = request(url, { method: r.method ?? (payload ? 'POST' : 'GET'), ca, headers, cert: r.cert, key: r.key }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        let json: unknown;
        try {
          json = JSON.parse(body.toString('utf8'));
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}
