// Topic confinement (DESIGN invariant 4): a device publishes and subscribes under
// devices/<its id>/ and nowhere else. Device ids cannot contain '/', '+' or '#', so the
// prefix test is exact: no wildcard can reach outside the namespace.

export function namespaceOf(deviceId: string): string {
  return `devices/${deviceId}/`;
}

/** A topic or topic filter strictly inside the device's namespace. */
export function isOwnTopic(deviceId: string, topicOrFilter: string): boolean {
  return isUnder(namespaceOf(deviceId), topicOrFilter);
}

/** A topic or topic filter strictly inside a namespace given as its prefix (namespaceOf). */
export function isUnder(namespace: string, topicOrFilter: string): boolean {
  return topicOrFilter.length > namespace.length && topicOrFilter.startsWith(namespace);
}
