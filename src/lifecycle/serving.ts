// Where an accepted snapshot is served. The DataPlane decides which snapshot
// serves (versions, hashes, validation, last known good); a Serving compiles
// and swaps it: in this process (LocalServing) or in every worker process
// (ClusterServing, for --workers N).

import type { Gateway } from '../server/server.ts';
import type { Snapshot } from './snapshot.ts';
import type { WorkerReport } from '../telemetry/stats.ts';

export interface Serving {
  /** Compile `next` and serve it; throws when it cannot be compiled (nothing changes then). */
  apply(next: Snapshot, previous: Snapshot | undefined): Promise<void>;
  /** Start listening (after the first apply); resolves to the port. */
  listen(): Promise<number>;
  /** Drain and stop. */
  shutdown(graceMs: number): Promise<void>;
  /** The health document changed (cluster mode pushes it to workers). */
  healthChanged?(): void;
  /** --workers N: ask every worker how it is (a worker that does not answer in time is not alive). */
  workers?(withMetrics: boolean): Promise<WorkerReport[]>;
  /** What policy state in this process reports for /__health (circuit breakers, traffic splits); none with workers. */
  policyReport?(): Record<string, Record<string, unknown>>;
  /** The in-process gateway, when there is one (tests). */
  readonly gateway?: Gateway;
}

/** What a Serving asks its DataPlane for. */
export interface ServingHooks {
  health(): Record<string, unknown>;
  ready(): boolean;
}
