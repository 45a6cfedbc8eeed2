// The wire contract between the control plane, etcd and data planes. Both
// sides import these types; docs/fleet.md describes the same in prose.
//
// Data-plane API (bearer --node-token):
//   GET  /v1/watch?after=VERSION&node=ID
//        200 ConfigEnvelope  when a version > after exists (at once), or one is
//                            published while the request is held (up to ~30 s)
//        204                 nothing newer within the hold time
//        409 {error, latest} `after` is ahead of the newest version the control
//                            plane knows (its store was reset): the node decides
//   POST /v1/nodes/{id}/report   NodeReport -> 204
//
// In etcd (the control plane's --etcd store, and what `portico run --etcd`
// watches), under a prefix (default /portico):
//   <prefix>/configs/<version, 10 digits>  ConfigEnvelope (history)
//   <prefix>/current                       ConfigEnvelope (the newest; what nodes watch)
//   <prefix>/nodes/<id>                     NodeRecord

export interface ConfigMeta {
  version: number;
  /** sha256 of the canonical JSON of `config` (src/lifecycle/canonical.ts). */
  hash: string;
  created_at: string;
  author?: string;
  message?: string;
}

export interface ConfigEnvelope extends ConfigMeta {
  /** The configuration document, comments stripped. */
  config: unknown;
}

export type NodeStatus = 'ok' | 'degraded' | 'rejected' | 'starting';

/** What a node reports after every apply or rejection (Envoy's ACK/NACK). */
export interface NodeReport {
  applied_version: number | null;
  hash: string | null;
  status: NodeStatus;
  /** The last version this node refused, and why; null when the last offer was applied. */
  rejected_version: number | null;
  error: string | null;
}

/** What the control plane keeps per node. */
export interface NodeRecord extends NodeReport {
  node: string;
  last_seen: string;
}

/** The 409 body of GET /v1/watch. `latest` is 0 when nothing is published. */
export interface WatchConflict {
  error: string;
  latest: number;
}

/** Node ids: what a hostname, pod name or uuid can hold, nothing that could escape a path or key. */
export const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export const DEFAULT_ETCD_PREFIX = '/portico';
export const WATCH_HOLD_MS = 30_000;

export function etcdKeys(prefix: string) {
  const p = prefix.replace(/\/+$/, '');
  return {
    current: `${p}/current`,
    config: (version: number) => `${p}/configs/${String(version).padStart(10, '0')}`,
    configsPrefix: `${p}/configs/`,
    node: (id: string) => `${p}/nodes/${id}`,
    nodesPrefix: `${p}/nodes/`,
  };
}
