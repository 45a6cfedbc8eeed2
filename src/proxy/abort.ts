// A child AbortController that also aborts when its parent does, with an
// optional deadline. AbortSignal.any/timeout would do the same, but each call
// allocates more and keeps listeners alive on long-lived parents; this one
// detaches itself with dispose().

export interface Deadline {
  readonly signal: AbortSignal;
  /** Stop the timer and detach from the parent. Safe to call twice. */
  dispose(): void;
  /** True when the deadline (not the parent) fired. */
  readonly expired: boolean;
  /** Abort now (cancels whatever still listens to the signal). */
  abort(reason?: unknown): void;
}

/** `reason` is called only if the deadline fires: building an Error captures a stack, too costly per request. */
export function deadline(parent: AbortSignal | undefined, ms: number, reason?: () => unknown): Deadline {
  const ctl = new AbortController();
  let expired = false;
  let timer: NodeJS.Timeout | undefined;
  const onParent = () => ctl.abort(parent?.reason);
  if (parent) {
    if (parent.aborted) ctl.abort(parent.reason);
    else parent.addEventListener('abort', onParent, { once: true });
  }
  if (ms > 0 && !ctl.signal.aborted) {
    timer = setTimeout(() => {
      expired = true;
      ctl.abort(reason?.());
    }, ms);
  }
  return {
    signal: ctl.signal,
    get expired() {
      return expired;
    },
    abort(r?: unknown) {
      ctl.abort(r);
    },
    dispose() {
      if (timer) clearTimeout(timer);
      timer = undefined;
      parent?.removeEventListener('abort', onParent);
    },
  };
}
