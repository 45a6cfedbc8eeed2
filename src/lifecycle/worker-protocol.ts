// Messages between the primary and its workers (node:cluster IPC, structured clone).

import type { ProcessReport } from '../telemetry/stats.ts';
import type { Snapshot } from './snapshot.ts';

export type ToWorker =
  | { type: 'apply'; snapshot: Snapshot; previous: Snapshot | undefined }
  | { type: 'listen' }
  | { type: 'health'; health: Record<string, unknown>; ready: boolean }
  | { type: 'shutdown'; graceMs: number }
  | { type: 'report'; id: number; metrics: boolean };

export type FromWorker =
  /** Sent once the worker listens for messages: anything sent before would be lost. */
  | { type: 'ready' }
  | { type: 'applied'; version: number }
  | { type: 'listening'; port: number }
  | { type: 'failed'; request: ToWorker['type']; error: string }
  | { type: 'report'; id: number; report: ProcessReport };
