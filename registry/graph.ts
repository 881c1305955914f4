// The fleet graph: CAs, certificates, devices, groups and gateways as one directed graph
// (graphology), built from the store at start and kept in step by the registry's events.
// It answers questions about structure — what is under a CA, who is in a group, whom a
// gateway speaks for — never the per-CONNECT decision, which stays on indexed queries. The
// one thing a CONNECT asks it is a node lookup, not a walk: whether the device has any grant
// at all (see hasNoGrants).
import { DirectedGraph } from 'graphology';
import type { RegistryEvent } from './events.js';
import type { CertificateStatus } from './model.js';
import type { RegistryStore } from './store.js';

type Kind = 'ca' | 'cert' | 'device' | 'group';
/** cert → CA and sub-CA → CA: issued-by; cert → device: identifies; device → group: member-of; child → gateway: child-of. */
type EdgeKind = 'issued-by' | 'identifies' | 'member-of' | 'child-of';

interface NodeAttributes {
  kind: Kind;
  /** Certificates only. */
  status?: CertificateStatus;
  /** Devices only: marked a gateway (it speaks for its children). */
  gateway?: boolean;
}
interface EdgeAttributes {
  kind: EdgeKind;
}

const key = (kind: Kind, id: string) => `${kind}:${id}`;
const idOf = (node: string) => node.slice(node.indexOf(':') + 1);

export interface BlastRadius {
  ca: string;
  /** The CA itself and every CA below it. */
  cas: string[];
  certificates: { total: number; byStatus: Partial<Record<CertificateStatus, number>>; serials: string[] };
  devices: { total: number; ids: string[] };
}

export class FleetGraph {
  #graph = new DirectedGraph<NodeAttributes, EdgeAttributes>({ allowSelfLoops: false });

  static async build(store: RegistryStore): Promise<FleetGraph> {
    const graph = new FleetGraph();
    for (const ca of await store.cas.all()) {
      graph.#node('ca', ca.id);
      if (ca.parentId) graph.#edge('ca', ca.id, 'ca', ca.parentId, 'issued-by');
    }
    for (const d of await store.devices.edges()) {
      graph.#device(d.id, d.gateway);
      if (d.gatewayId) graph.#edge('device', d.id, 'device', d.gatewayId, 'child-of');
    }
    for (const c of await store.certificates.edges()) graph.#certificate(c.serial, c.caId, c.deviceId, c.status);
    for (const g of await store.groups.all()) graph.#node('group', g.id);
    for (const m of await store.groups.edges()) graph.#edge('device', m.deviceId, 'group', m.groupId, 'member-of');
    return graph;
  }

  /** Rebuilds from the store, for when events may have been missed (a cluster node back on its bus). */
  async reload(store: RegistryStore): Promise<void> {
    this.#graph = (await FleetGraph.build(store)).#graph;
  }

  get size(): { nodes: number; edges: number } {
    return { nodes: this.#graph.order, edges: this.#graph.size };
  }

  apply(event: RegistryEvent): void {
    switch (event.type) {
      case 'ca.created':
        this.#node('ca', event.caId);
        if (event.parentId) this.#edge('ca', event.caId, 'ca', event.parentId, 'issued-by');
        break;
      case 'device.created':
        this.#device(event.deviceId, event.gateway);
        break;
      case 'certificate.created':
        this.#certificate(event.serial, event.caId, event.deviceId, event.status);
        break;
      case 'certificate.status':
        if (this.#graph.hasNode(key('cert', event.serial))) this.#graph.setNodeAttribute(key('cert', event.serial), 'status', event.status);
        break;
      case 'device.topology': {
        const child = this.#device(event.deviceId, event.gateway);
        for (const edge of this.#graph.outEdges(child)) if (this.#graph.getEdgeAttribute(edge, 'kind') === 'child-of') this.#graph.dropEdge(edge);
        if (event.gatewayId) this.#edge('device', event.deviceId, 'device', event.gatewayId, 'child-of');
        break;
      }
      case 'group.policy':
        this.#node('group', event.groupId);
        break;
      case 'group.membership':
        if (event.member) this.#edge('device', event.deviceId, 'group', event.groupId, 'member-of');
        else if (this.#graph.hasEdge(key('device', event.deviceId), key('group', event.groupId))) this.#graph.dropEdge(key('device', event.deviceId), key('group', event.groupId));
        break;
      case 'device.status':
      case 'ca.status':
        break; // structure unchanged
    }
  }

  /** Everything a CA's compromise reaches: sub-CAs, their certificates and those devices. */
  blastRadius(caId: string): BlastRadius | undefined {
    const start = key('ca', caId);
    if (!this.#graph.hasNode(start)) return undefined;
    const cas: string[] = [];
    const serials: string[] = [];
    const byStatus: Partial<Record<CertificateStatus, number>> = {};
    const devices = new Set<string>();
    const queue = [start];
    for (let i = 0; i < queue.length; i++) {
      const node = queue[i]!;
      cas.push(idOf(node));
      this.#graph.forEachInEdge(node, (_edge, attributes, source, _target, sourceAttributes) => {
        if (attributes.kind !== 'issued-by') return;
        if (sourceAttributes.kind === 'ca') {
          queue.push(source);
          return;
        }
        serials.push(idOf(source));
        const status = sourceAttributes.status ?? 'ACTIVE';
        byStatus[status] = (byStatus[status] ?? 0) + 1;
        this.#graph.forEachOutNeighbor(source, (neighbor, neighborAttributes) => {
          if (neighborAttributes.kind === 'device') devices.add(idOf(neighbor));
        });
      });
    }
    return { ca: caId, cas, certificates: { total: serials.length, byStatus, serials }, devices: { total: devices.size, ids: [...devices] } };
  }

  members(groupId: string): string[] | undefined {
    const node = key('group', groupId);
    return this.#graph.hasNode(node) ? this.#graph.inNeighbors(node).map(idOf).sort() : undefined;
  }

  children(gatewayId: string): string[] | undefined {
    const node = key('device', gatewayId);
    if (!this.#graph.hasNode(node)) return undefined;
    return this.#graph
      .inEdges(node)
      .filter((edge) => this.#graph.getEdgeAttribute(edge, 'kind') === 'child-of')
      .map((edge) => idOf(this.#graph.source(edge)))
      .sort();
  }

  /**
   * Whether a device is no gateway and in no group, so its topics are its own namespace
   * alone; undefined for a device the graph does not know (yet). A node lookup, so a CONNECT
   * may ask it.
   */
  hasNoGrants(deviceId: string): boolean | undefined {
    const node = key('device', deviceId);
    if (!this.#graph.hasNode(node)) return undefined;
    if (this.#graph.getNodeAttribute(node, 'gateway') === true) return false;
    return !this.#graph.someOutEdge(node, (_edge, attributes) => attributes.kind === 'member-of');
  }

  #device(id: string, gateway: boolean): string {
    const node = this.#node('device', id);
    this.#graph.setNodeAttribute(node, 'gateway', gateway);
    return node;
  }

  #node(kind: Kind, id: string): string {
    const node = key(kind, id);
    this.#graph.mergeNode(node, { kind });
    return node;
  }

  #edge(fromKind: Kind, from: string, toKind: Kind, to: string, kind: EdgeKind): void {
    this.#graph.mergeEdge(this.#node(fromKind, from), this.#node(toKind, to), { kind });
  }

  #certificate(serial: string, caId: string, deviceId: string, status: CertificateStatus): void {
    // Every issuance lands here: the certificate's node is merged once, not once per edge.
    const node = key('cert', serial);
    this.#graph.mergeNode(node, { kind: 'cert', status });
    this.#graph.mergeEdge(node, this.#node('ca', caId), { kind: 'issued-by' });
    this.#graph.mergeEdge(node, this.#node('device', deviceId), { kind: 'identifies' });
  }
}
