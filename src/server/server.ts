// The data-plane listener: node:http (or https for `tls`), the handler, the
// current Plan behind one reference, and a bounded graceful shutdown.

import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Plan } from '../plan/plan.ts';
import { log } from '../telemetry/log.ts';
import type { HealthInfo } from './builtins.ts';
import { createHandler } from './handler.ts';
import { tlsServerOptions } from './tls.ts';

export interface GatewayOptions {
  health?: HealthInfo;
  /** /__ready answers 200 while this says true (and the gateway is not draining). */
  ready?: () => boolean;
  forceDebug?: boolean;
  /** Port override (-p); 0 picks a free port. */
  port?: number;
}

export class Gateway {
  #plan: Plan;
  /** A plan waiting for its swap time (swapAt). */
  #due: { plan: Plan; at: number; timer: NodeJS.Timeout; resolve: (old: Plan) => void } | undefined;
  #draining = false;
  readonly server: Server;
  readonly #opts: GatewayOptions;

  constructor(plan: Plan, opts: GatewayOptions = {}) {
    this.#plan = plan;
    this.#opts = opts;
    const cfg = plan.config;
    const ready = opts.ready ?? (() => true);
    const handler = createHandler(this, {
      health: opts.health ?? (() => ({})),
      ready: () => !this.#draining && ready(),
      forceDebug: opts.forceDebug ?? false,
    });
    const serverOpts = {
      // Slowloris protection: headers must arrive within read_header_timeout (10 s unless configured).
      headersTimeout: cfg.readHeaderTimeoutMs,
      requestTimeout: cfg.readTimeoutMs,
      // Node checks those two timeouts on this interval (30 s by default): check often enough to honour them.
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(cfg.readHeaderTimeoutMs / 4))),
      keepAliveTimeout: cfg.idleTimeoutMs > 0 ? cfg.idleTimeoutMs : 60_000,
      requireHostHeader: true,
      // Let duplicate Host headers through so the handler can refuse them with a clear 400.
      joinDuplicateHeaders: false,
    };
    this.server = cfg.tls ? createHttpsServer({ ...serverOpts, ...tlsServerOptions(cfg.tls) }, handler) : createHttpServer(serverOpts, handler);
    if (cfg.writeTimeoutMs > 0) this.server.timeout = cfg.writeTimeoutMs;
    this.server.on('clientError', onClientError);
  }

  /** The plan a request arriving now runs on (a plan due to be swapped in by now is swapped first). */
  get plan(): Plan {
    if (this.#due !== undefined && Date.now() >= this.#due.at) this.#swapDue();
    return this.#plan;
  }

  /** Swap in a new plan; requests already running finish on the old one. */
  swap(plan: Plan): Plan {
    if (this.#due !== undefined) this.#swapDue();
    const old = this.#plan;
    this.#plan = plan;
    return old;
  }

  /**
   * Swap in `plan` at wall-clock time `at` (Date.now() milliseconds): every
   * request that arrives from then on runs on it, even before the timer fires
   * (--workers: all workers get the same `at`, so requests that reach the
   * instance after that moment see the new version whichever worker takes them).
   * Resolves with the plan it replaced.
   */
  swapAt(plan: Plan, at: number): Promise<Plan> {
    if (this.#due !== undefined) this.#swapDue();
    // Already due (a single process's reload): swap now, no timer.
    if (at <= Date.now()) return Promise.resolve(this.swap(plan));
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.#swapDue(), Math.max(0, at - Date.now()));
      this.#due = { plan, at, timer, resolve };
    });
  }

  #swapDue(): void {
    const due = this.#due!;
    this.#due = undefined;
    clearTimeout(due.timer);
    const old = this.#plan;
    this.#plan = due.plan;
    due.resolve(old);
  }

  /** `port` overrides the configured one (and the -p option). */
  listen(port?: number): Promise<AddressInfo> {
    const cfg = this.#plan.config;
    port ??= this.#opts.port ?? cfg.port;
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ port, host: cfg.listenIp }, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /** Stop accepting, let in-flight requests finish for up to graceMs, then close what is left. */
  async shutdown(graceMs = 10_000): Promise<void> {
    this.#draining = true;
    if (this.#due !== undefined) this.#swapDue();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const timer = setTimeout(() => this.server.closeAllConnections(), graceMs);
    // Idle keep-alive sockets that become idle after their last response must close too.
    const idle = setInterval(() => this.server.closeIdleConnections(), 100);
    await closed;
    clearTimeout(timer);
    clearInterval(idle);
    await this.#plan.close();
  }
}

const CLIENT_ERRORS: Record<string, [number, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'Request Header Fields Too Large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'Request Timeout'],
  ERR_HTTP_HEADERS_TIMEOUT: [408, 'Request Timeout'],
};

function onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, text] = CLIENT_ERRORS[err.code ?? ''] ?? [400, 'Bad Request'];
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  log('debug', 'client error', { code: err.code, status });
}
