// The code a failure is counted under in the simulator's reports: the API's error code, the
// broker's rejected reply's code, a CONNACK name, a socket error code — or `error` for a
// failure that carries none.
export function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' || typeof code === 'number' ? String(code) : 'error';
}
