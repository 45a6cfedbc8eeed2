// Messages between the primary and its workers (node:cluster IPC, structured clone).

import type { ProcessReport } from '../telemetry/stats.ts';
import type { Snapshot } from './snapshot.ts';

export type ToWorker =
  /** Compile and serve at once (a worker starting up). */
  | { type: 'apply'; snapshot: Snapshot; previous: Snapshot | undefined }
  /** A reload, phase one: compile and hold (answer 'prepared' or 'failed'). */
  | { type: 'prepare'; snapshot: Snapshot; previous: Snapshot | undefined }
  /** Phase two, once every worker prepared: serve it from wall-clock time `at` (answer 'committed'). */
  | { type: 'commit'; at: number }
  /** Phase two when a worker could not prepare: drop the prepared plan. */
  | { type: 'abort' }
  /** `port`: listen on it instead of the configured one (Bun workers joining the first one's port). */
  | { type: 'listen'; port?: number }
  | { type: 'health'; health: Record<string, unknown>; ready: boolean }
  | { type: 'shutdown'; graceMs: number }
  | { type: 'report'; id: number; metrics: boolean };

export type FromWorker =
  /** Sent once the worker listens for messages: anything sent before would be lost. */
  | { type: 'ready' }
  | { type: 'applied'; version: number }
  | { type: 'prepared'; version: number }
  | { type: 'committed'; version: number }
  | { type: 'listening'; port: number }
  | { type: 'failed'; request: ToWorker['type']; error: string }
  | { type: 'report'; id: number; report: ProcessReport };
