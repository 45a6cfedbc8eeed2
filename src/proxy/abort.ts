// Cancellation for the request path: a Deadline aborts when its timer fires,
// when its parent aborts, or when told to. It stands in for AbortController +
// setTimeout, which cost an EventTarget, a Timeout object and two closures per
// request; here the Deadline itself is the timer-list node and the listener
// list is a plain array. Nothing outside Portico sees these signals (on Node,
// backend calls go through undici's dispatch API, which takes no AbortSignal;
// on Bun, upstream-fetch.ts links one AbortController per call to them).

export type AbortListener = () => void;

/** What a pipeline stage may watch: aborted when the endpoint times out or the client leaves. */
export interface CancelSignal {
  readonly aborted: boolean;
  /** Why it aborted (an Error), once aborted. */
  readonly reason: unknown;
  /** Called once, when it aborts. Not called if it has already aborted: check `aborted` first. */
  onAbort(fn: AbortListener): void;
  offAbort(fn: AbortListener): void;
}

/** The Error a signal aborted with (a reason that is not an Error gets a plain one). */
export function abortReason(signal: CancelSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('aborted');
}

/** `p`, or abortReason(signal) as soon as the signal aborts (p itself goes on: nothing cancels it). */
export function untilAborted<T>(p: Promise<T>, signal: CancelSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortReason(signal));
    signal.onAbort(onAbort);
    p.then(
      (v) => {
        signal.offAbort(onAbort);
        resolve(v);
      },
      (err) => {
        signal.offAbort(onAbort);
        reject(err);
      },
    );
  });
}

export class Deadline implements CancelSignal {
  aborted = false;
  reason: unknown = undefined;
  /** True when the timer (not the parent, not abort()) ended it. */
  expired = false;
  #listeners: AbortListener[] | undefined;
  readonly #parent: CancelSignal | undefined;
  readonly #onParent: AbortListener | undefined;
  readonly #timeoutReason: (() => unknown) | undefined;
  // Links in the timer queue of its duration (see TimerQueue).
  due = 0;
  prev: Deadline | undefined;
  next: Deadline | undefined;
  queue: TimerQueue | undefined;

  /**
   * `ms` <= 0: no timer. `timeoutReason` is called only if the timer fires:
   * building an Error captures a stack, too costly to do per request.
   */
  constructor(parent: CancelSignal | undefined, ms: number, timeoutReason?: () => unknown) {
    this.#timeoutReason = timeoutReason;
    if (parent) {
      if (parent.aborted) {
        this.aborted = true;
        this.reason = parent.reason;
        return;
      }
      this.#parent = parent;
      this.#onParent = () => this.abort(parent.reason);
      parent.onAbort(this.#onParent);
    }
    if (ms > 0) queueFor(ms).add(this);
  }

  onAbort(fn: AbortListener): void {
    if (this.#listeners) this.#listeners.push(fn);
    else this.#listeners = [fn];
  }

  offAbort(fn: AbortListener): void {
    const l = this.#listeners;
    if (!l) return;
    const i = l.lastIndexOf(fn);
    if (i >= 0) l.splice(i, 1);
  }

  /** Abort now: every listener runs once. Does nothing if already aborted. */
  abort(reason?: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason ?? new Error('aborted');
    this.#detach();
    const l = this.#listeners;
    this.#listeners = undefined;
    if (l) for (let i = 0; i < l.length; i++) l[i]();
  }

  /** Stop the timer and detach from the parent; the signal stays as it is. Safe to call twice. */
  dispose(): void {
    this.#detach();
  }

  /** Called by the timer queue. */
  expire(): void {
    if (this.aborted) return;
    this.expired = true;
    this.abort(this.#timeoutReason?.());
  }

  #detach(): void {
    this.queue?.remove(this);
    if (this.#onParent) this.#parent!.offAbort(this.#onParent);
  }
}

/**
 * All pending deadlines of one duration, in the order they were set (which is
 * the order they expire), behind one Node timer armed for the earliest.
 * Adding and removing are O(1) and allocate nothing.
 */
class TimerQueue {
  head: Deadline | undefined;
  tail: Deadline | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #ms: number;

  constructor(ms: number) {
    this.#ms = ms;
  }

  add(d: Deadline): void {
    d.due = performance.now() + this.#ms;
    d.queue = this;
    d.prev = this.tail;
    d.next = undefined;
    if (this.tail) this.tail.next = d;
    else this.head = d;
    this.tail = d;
    if (!this.#timer) this.#arm(this.#ms);
  }

  remove(d: Deadline): void {
    if (d.queue !== this) return;
    if (d.prev) d.prev.next = d.next;
    else this.head = d.next;
    if (d.next) d.next.prev = d.prev;
    else this.tail = d.prev;
    d.prev = d.next = d.queue = undefined;
    // The timer stays armed: when it fires on an empty (or later) queue it re-arms or stops.
  }

  #arm(delay: number): void {
    this.#timer = setTimeout(this.#fire, delay);
    this.#timer.unref();
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    const now = performance.now();
    let d = this.head;
    while (d && d.due <= now) {
      this.remove(d);
      d.expire();
      d = this.head;
    }
    if (d) this.#arm(Math.max(1, Math.ceil(d.due - now)));
  };
}

const queues = new Map<number, TimerQueue>();

function queueFor(ms: number): TimerQueue {
  let q = queues.get(ms);
  if (!q) queues.set(ms, (q = new TimerQueue(ms)));
  return q;
}
