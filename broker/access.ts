// What topics a device may use: its own namespace always; its children's namespaces when it
// is a gateway; and whatever its groups' policies grant, with ${deviceId} filled in.
import type { DeviceAccess } from '../registry/groups.js';
import { expandPolicy, filterCovers, topicMatches } from '../registry/topic-policy.js';
import { isUnder, namespaceOf } from './topics.js';

export class AccessPolicy {
  #prefixes: readonly string[] | undefined;

  constructor(
    readonly deviceId: string,
    /** Device ids whose devices/<id>/ namespace this device may use: itself and its children. */
    private readonly namespaces: readonly string[],
    private readonly publish: readonly string[],
    private readonly subscribe: readonly string[],
    /** The groups that granted the above, so a change to one of them finds this policy. */
    readonly groups: readonly string[],
  ) {}

  /** Only the device's own namespace: the default, and what is left when the registry cannot say more. */
  static own(deviceId: string): AccessPolicy {
    return new AccessPolicy(deviceId, [deviceId], [], [], []);
  }

  static of(access: DeviceAccess): AccessPolicy {
    const publish: string[] = [];
    const subscribe: string[] = [];
    for (const group of access.groups) {
      const policy = expandPolicy(group.policy, access.deviceId);
      publish.push(...policy.publish);
      subscribe.push(...policy.subscribe);
    }
    return new AccessPolicy(access.deviceId, [access.deviceId, ...access.children], publish, subscribe, access.groups.map((g) => g.id));
  }

  /** Inside a namespace this device owns or speaks for. */
  #inNamespace(topicOrFilter: string): boolean {
    // The prefixes are made once: every PUBLISH asks this.
    this.#prefixes ??= this.namespaces.map(namespaceOf);
    return this.#prefixes.some((prefix) => isUnder(prefix, topicOrFilter));
  }

  mayPublish(topic: string): boolean {
    return this.#inNamespace(topic) || this.publish.some((filter) => topicMatches(filter, topic));
  }

  maySubscribe(filter: string): boolean {
    return this.#inNamespace(filter) || this.subscribe.some((pattern) => filterCovers(pattern, filter));
  }
}

/** What the broker asks the registry about access (a narrow port). */
export interface AccessSource {
  accessOf(deviceId: string): Promise<DeviceAccess>;
}

/**
 * Access policies by device, cached, with the same care as verdicts: a change announced
 * while a lookup is in flight sends the lookup round again (access changes are rare operator
 * actions, so one counter for all of them is enough).
 */
export class AccessCache {
  readonly #policies = new Map<string, AccessPolicy>();
  #epoch = 0;

  constructor(
    private readonly source: AccessSource,
    private readonly maxEntries: number,
  ) {}

  /** `fresh` skips the cached policy (its events may have been missed) and reads the registry. */
  async policyOf(deviceId: string, fresh = false): Promise<AccessPolicy> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const cached = this.#policies.get(deviceId);
      if (cached && !fresh) return cached;
      const epoch = this.#epoch;
      const policy = AccessPolicy.of(await this.source.accessOf(deviceId));
      if (epoch !== this.#epoch) continue;
      if (this.#policies.size >= this.maxEntries) this.#policies.delete(this.#policies.keys().next().value!);
      this.#policies.set(deviceId, policy);
      return policy;
    }
    throw new Error('access kept changing while it was read');
  }

  /** Forgets the given devices' policies, or all of them. */
  invalidate(deviceIds?: readonly string[]): void {
    this.#epoch++;
    if (!deviceIds) this.#policies.clear();
    else for (const id of deviceIds) this.#policies.delete(id);
  }
}
