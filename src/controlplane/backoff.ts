// Capped exponential backoff with jitter (half fixed, half random), in the shape etcd3's
// `faultHandling.watchBackoff` takes (cockatiel's IBackoff), so a watch stream
// to a restarted etcd comes back within ~2 s instead of the default 30 s cap.

export interface Backoff {
  readonly duration: number;
  next(): Backoff;
}

export function jitteredBackoff(initialMs: number, maxMs: number, attempt = 0): Backoff {
  const ceiling = Math.min(maxMs, initialMs * 2 ** attempt);
  return {
    duration: Math.round(ceiling / 2 + (Math.random() * ceiling) / 2),
    next: () => jitteredBackoff(initialMs, maxMs, Math.min(attempt + 1, 30)),
  };
}
