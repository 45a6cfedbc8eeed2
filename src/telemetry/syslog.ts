// Syslog over UDP: one RFC 5424 message per log line, one datagram each
// (RFC 5426). Written by hand on node:dgram: Node has no unix datagram socket
// to reach /dev/log, and the pino syslog packages either run as a transport
// (a worker thread in every process) or as a separate process reading a pipe;
// the message header is one line of code.

import dgram from 'node:dgram';
import { lookup } from 'node:dns';
import { isIP } from 'node:net';
import { hostname } from 'node:os';

export interface SyslogTarget {
  host: string;
  port: number;
  /** RFC 5424 facility code (local3 = 19). */
  facility: number;
  /** The APP-NAME field. */
  appName: string;
}

/** RFC 5424 severities by pino level number: debug 7, info 6, warn 4, error 3. */
const SEVERITY: Record<number, number> = { 20: 7, 30: 6, 40: 4, 50: 3 };
/** Lines kept while the host name resolves; more are dropped. */
const MAX_QUEUED = 1000;
/** A UDP payload cannot be larger; longer lines are cut. */
const MAX_DATAGRAM = 65_000;
/** Send errors are reported at most once per minute. */
const ERROR_EVERY_MS = 60_000;

/** PRINTUSASCII only (RFC 5424 header fields), at most `max` characters; "-" when empty. */
export function headerField(value: string, max: number): string {
  const clean = value.replace(/[^\x21-\x7e]/g, '').slice(0, max);
  return clean === '' ? '-' : clean;
}

const HOST = headerField(hostname(), 255);

export class SyslogSender {
  readonly #target: SyslogTarget;
  readonly #onError: (message: string) => void;
  #socket: dgram.Socket | undefined;
  #address: string | undefined;
  #queue: Buffer[] | undefined = [];
  #inFlight = 0;
  #idle: (() => void)[] = [];
  #lastErrorAt = 0;
  #closed = false;

  constructor(target: SyslogTarget, onError: (message: string) => void) {
    this.#target = target;
    this.#onError = onError;
    if (isIP(target.host) !== 0) this.#resolved(target.host);
    else {
      // Resolved once per configuration: a reload resolves again.
      lookup(target.host, (err, address) => {
        if (err) {
          this.#queue = undefined;
          this.#failed(err);
          this.#settle();
        } else this.#resolved(address);
      });
    }
  }

  /** Send one log line (its trailing newline is dropped) at pino level `level`. */
  send(level: number, line: string): void {
    if (this.#closed) return;
    const t = this.#target;
    const text = line.endsWith('\n') ? line.slice(0, -1) : line;
    const header = `<${t.facility * 8 + (SEVERITY[level] ?? 6)}>1 ${new Date().toISOString()} ${HOST} ${t.appName} ${process.pid} - - `;
    let message = Buffer.from(header + text);
    if (message.length > MAX_DATAGRAM) message = message.subarray(0, MAX_DATAGRAM);
    if (this.#address !== undefined) this.#send(message);
    else if (this.#queue && this.#queue.length < MAX_QUEUED) this.#queue.push(message);
  }

  /** Resolves once every message handed to the socket was sent (or failed). */
  idle(): Promise<void> {
    if (this.#inFlight === 0 && !(this.#queue?.length && this.#address === undefined)) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Stop sending; the socket closes once what was handed to it is sent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = undefined;
    void this.idle().then(() => this.#socket?.close());
  }

  #resolved(address: string): void {
    if (this.#closed) return;
    const socket = dgram.createSocket(isIP(address) === 6 ? 'udp6' : 'udp4');
    socket.on('error', (err) => this.#failed(err));
    socket.unref();
    this.#socket = socket;
    this.#address = address;
    const queued = this.#queue ?? [];
    this.#queue = undefined;
    for (const m of queued) this.#send(m);
    this.#settle();
  }

  #send(message: Buffer): void {
    this.#inFlight++;
    this.#socket!.send(message, this.#target.port, this.#address, (err) => {
      this.#inFlight--;
      if (err) this.#failed(err);
      this.#settle();
    });
  }

  #settle(): void {
    if (this.#inFlight > 0) return;
    const waiting = this.#idle;
    this.#idle = [];
    for (const resolve of waiting) resolve();
  }

  #failed(err: Error): void {
    const now = Date.now();
    if (now - this.#lastErrorAt < ERROR_EVERY_MS) return;
    this.#lastErrorAt = now;
    this.#onError(`syslog: cannot send to ${this.#target.host}:${this.#target.port}: ${err.message}`);
  }
}
