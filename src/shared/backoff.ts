// Exponential backoff with full jitter (a random wait between 0 and the capped
// exponential), so a fleet that lost its control plane does not come back in
// lockstep. The sources that use it run beside the request path, never on it.

export class Backoff {
  readonly #baseMs: number;
  readonly #capMs: number;
  #failures = 0;

  /**
   * The 5 s cap bounds how long a gateway takes to notice its source is back;
   * a refused connection costs next to nothing, even across a large fleet.
   */
  constructor(baseMs = 500, capMs = 5_000) {
    this.#baseMs = baseMs;
    this.#capMs = capMs;
  }

  get failures(): number {
    return this.#failures;
  }

  /** The wait before the next attempt after one more failure. */
  next(): number {
    const ceiling = Math.min(this.#capMs, this.#baseMs * 2 ** Math.min(this.#failures, 30));
    this.#failures++;
    return Math.random() * ceiling;
  }

  reset(): void {
    this.#failures = 0;
  }
}

/** A sleep that ends early when `signal` aborts. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
