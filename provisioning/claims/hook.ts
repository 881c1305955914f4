// The pre-provisioning hook: before anything is signed for a claim, the batch's webhook is
// asked whether this device may be provisioned. It may allow, deny, or allow with some
// parameters overridden. Anything but a clear answer in time — a timeout, a refused
// connection, a non-2xx status, a body that is not a decision — refuses the claim: the hook
// fails closed.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { ClaimHook, JsonObject } from '../../registry/model.js';
import { ClaimError } from './errors.js';

/** What the hook is told about the claim (POSTed as JSON). */
export interface HookRequest {
  batch: string;
  deviceId: string;
  parameters: Record<string, string>;
  /** SHA-256 of the public key the CSR asks to certify. */
  publicKeySha256: string;
  clientId: string;
  peer: string;
}

export type HookDecision = { allow: true; parameters: Record<string, string> } | { allow: false; reason?: string };

const MAX_ANSWER_BYTES = 64 * 1024;

function decisionOf(body: unknown): HookDecision {
  const answer = body as JsonObject | null;
  if (!answer || typeof answer !== 'object' || typeof answer.allow !== 'boolean') throw new ClaimError('claim_hook_failed', 'the answer has no boolean "allow"');
  if (!answer.allow) return { allow: false, reason: typeof answer.reason === 'string' ? answer.reason.slice(0, 256) : undefined };
  const overrides = answer.parameters ?? {};
  if (typeof overrides !== 'object' || Array.isArray(overrides) || Object.values(overrides).some((v) => typeof v !== 'string')) {
    throw new ClaimError('claim_hook_failed', '"parameters" must map names to strings');
  }
  return { allow: true, parameters: overrides as Record<string, string> };
}

/** Asks the hook; resolves with its decision or rejects with a claim_hook_* error. */
export function askHook(hook: ClaimHook, question: HookRequest): Promise<HookDecision> {
  const body = Buffer.from(JSON.stringify(question));
  const url = new URL(hook.url);
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<HookDecision>((resolve, reject) => {
    let settled = false;
    const finish = (outcome: () => HookDecision) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try {
        resolve(outcome());
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    };
    const fail = (error: ClaimError) => finish(() => {
      throw error;
    });
    // One deadline for the whole exchange: connecting, sending, waiting, reading.
    const timer = setTimeout(() => {
      fail(new ClaimError('claim_hook_timeout', `no answer within ${hook.timeoutMs} ms`));
      req.destroy();
    }, hook.timeoutMs);
    const req = send(url, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': body.length, accept: 'application/json' } }, (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      if (status < 200 || status > 299) {
        res.resume();
        return fail(new ClaimError('claim_hook_failed', `status ${status}`));
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_ANSWER_BYTES) {
          fail(new ClaimError('claim_hook_failed', `answer over ${MAX_ANSWER_BYTES} bytes`));
          req.destroy();
        } else chunks.push(chunk);
      });
      res.on('end', () =>
        finish(() => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            throw new ClaimError('claim_hook_failed', 'the answer is not JSON');
          }
          return decisionOf(parsed);
        }),
      );
      res.on('error', (error) => fail(new ClaimError('claim_hook_failed', error.message)));
    });
    req.on('error', (error: NodeJS.ErrnoException) => fail(new ClaimError('claim_hook_failed', error.code ?? error.message)));
    req.end(body);
  });
}
