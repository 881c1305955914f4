// The topic policy language: MQTT 3.1.1 topic filters (§4.7) in which ${deviceId} stands for
// the member's own id. Validated when a group is written; matched by the broker.
import { RegistryError } from './errors.js';
import type { TopicPolicy } from './model.js';

const VARIABLE = /\$\{([^}]*)\}/g;
const MAX_FILTERS = 64;
const MAX_LENGTH = 256;

function validateFilter(filter: unknown, where: string): void {
  if (typeof filter !== 'string' || filter.length === 0 || filter.length > MAX_LENGTH) {
    throw new RegistryError('invalid_policy', `${where}: filters are 1–${MAX_LENGTH} characters`);
  }
  for (const [, name] of filter.matchAll(VARIABLE)) {
    if (name !== 'deviceId') throw new RegistryError('invalid_policy', `${where}: unknown variable \${${name}}`);
  }
  const levels = filter.replace(VARIABLE, 'x').split('/');
  levels.forEach((level, i) => {
    // [MQTT-4.7.1-2] '#' alone and last; [MQTT-4.7.1-3] '+' alone in its level.
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) throw new RegistryError('invalid_policy', `${where}: '#' must be the last level on its own`);
    if (level.includes('+') && level !== '+') throw new RegistryError('invalid_policy', `${where}: '+' must be a level on its own`);
  });
}

export function validatePolicy(policy: TopicPolicy): void {
  for (const action of ['publish', 'subscribe'] as const) {
    const filters = policy[action];
    if (!Array.isArray(filters) || filters.length > MAX_FILTERS) throw new RegistryError('invalid_policy', `${action}: a list of at most ${MAX_FILTERS} filters`);
    filters.forEach((f, i) => validateFilter(f, `${action}[${i}]`));
  }
}

/** The policy as it applies to one device. Device ids hold no '/', '+' or '#'. */
export function expandPolicy(policy: TopicPolicy, deviceId: string): TopicPolicy {
  const expand = (f: string) => f.replace(VARIABLE, deviceId);
  return { publish: policy.publish.map(expand), subscribe: policy.subscribe.map(expand) };
}

/** Does the topic filter match the topic name? (§4.7; wildcards do not reach '$' topics.) */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true; // also matches the parent level itself
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Does every topic `filter` can match also match `pattern`? (A subscription within a grant.) */
export function filterCovers(pattern: string, filter: string): boolean {
  const p = pattern.split('/');
  const f = filter.split('/');
  if (filter.startsWith('$') && (p[0] === '+' || p[0] === '#')) return false;
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '#') return true;
    if (i >= f.length || f[i] === '#') return false;
    if (p[i] === '+') continue;
    if (f[i] === '+' || p[i] !== f[i]) return false;
  }
  return p.length === f.length;
}
