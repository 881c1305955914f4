// Operator authentication: a bearer token, looked up by its hash. Each operator has a name,
// so the audit log says who did what and a second operator can approve what a first one asked.
import type { FastifyRequest } from 'fastify';
import type { Actor, Operator } from '../../registry/model.js';
import { ApiError } from './errors.js';

export interface OperatorDirectory {
  authenticate(token: string): Promise<Operator | undefined>;
}

export function operatorAuthenticator(operators: OperatorDirectory): (request: FastifyRequest) => Promise<Actor> {
  return async (request) => {
    const header = request.headers.authorization;
    if (!header) throw new ApiError('token_missing');
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const operator = match ? await operators.authenticate(match[1]!) : undefined;
    if (!operator) throw new ApiError('token_invalid');
    return { kind: 'operator', id: operator.name };
  };
}
