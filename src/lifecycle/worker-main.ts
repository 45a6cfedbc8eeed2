// A worker process (--workers N): serves what the primary sends. It compiles
// and swaps plans exactly as a single process does (LocalServing); its health
// and readiness are the primary's, plus which worker answered.

import cluster from 'node:cluster';
import { flushLog, log } from '../telemetry/log.ts';
import { answerClusterScrapes, collectProcessMetrics } from '../telemetry/metrics.ts';
import { processReport } from '../telemetry/stats.ts';
import { LocalServing } from './local-serving.ts';
import type { FromWorker, ToWorker } from './worker-protocol.ts';

// The primary sums every worker's metrics at each scrape (prom-client answers it over the cluster channel).
collectProcessMetrics();
answerClusterScrapes();

let health: Record<string, unknown> = {};
let ready = false;
let stopping = false;
/** The configuration this worker serves. */
let served: { version: number; hash: string } | undefined;
/** The configuration prepared for the next commit. */
let prepared: { version: number; hash: string } | undefined;
const serving = new LocalServing(
  {
    health: () => ({ ...health, worker: { id: cluster.worker?.id ?? 0, pid: process.pid } }),
    ready: () => ready,
  },
  { debug: process.env.PORTICO_WORKER_DEBUG === '1' },
);

function reply(m: FromWorker): void {
  if (process.connected) process.send!(m);
}

async function shutdown(graceMs: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  ready = false;
  await serving.shutdown(graceMs);
  // Log lines are written asynchronously: the last access lines go out before the exit.
  await flushLog();
  process.exit(0);
}

process.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'apply':
      serving.apply(m.snapshot, m.previous).then(
        () => {
          served = { version: m.snapshot.version, hash: m.snapshot.hash };
          reply({ type: 'applied', version: m.snapshot.version });
        },
        (err: Error) => reply({ type: 'failed', request: 'apply', error: err.message }),
      );
      return;
    case 'prepare':
      prepared = { version: m.snapshot.version, hash: m.snapshot.hash };
      serving.prepare(m.snapshot, m.previous).then(
        () => reply({ type: 'prepared', version: m.snapshot.version }),
        (err: Error) => reply({ type: 'failed', request: 'prepare', error: err.message }),
      );
      return;
    case 'commit': {
      const version = prepared!;
      serving.commit(m.at).then(
        () => {
          served = version;
          reply({ type: 'committed', version: version.version });
        },
        (err: Error) => reply({ type: 'failed', request: 'commit', error: err.message }),
      );
      return;
    }
    case 'abort':
      void serving.abort();
      return;
    case 'listen':
      serving.listen(m.port).then(
        (port) => reply({ type: 'listening', port }),
        (err: Error) => reply({ type: 'failed', request: 'listen', error: err.message }),
      );
      return;
    case 'health':
      health = m.health;
      ready = m.ready;
      return;
    case 'shutdown':
      void shutdown(m.graceMs);
      return;
    case 'report':
      void processReport(served, m.metrics).then((report) => reply({ type: 'report', id: m.id, report: { ...report, policies: serving.policyReport() } }));
      return;
  }
});

// Messages that arrive before the listener above exists are dropped, and this
// module's imports take a while: say when it is listening, the primary waits for it.
reply({ type: 'ready' });

// The primary owns signals: SIGHUP reloads there, Ctrl-C (SIGINT to the whole
// group) is handled there and reaches workers as a shutdown message. A SIGTERM
// sent to this worker alone drains it, and the primary starts a replacement.
process.on('SIGHUP', () => {});
process.on('SIGINT', () => {});
process.on('SIGTERM', () => void shutdown(10_000));
// Losing the primary means nobody can replace or update this worker: drain and go.
process.on('disconnect', () => {
  if (!stopping) {
    log('error', 'the primary process is gone; draining this worker');
    void shutdown(10_000);
  }
});
