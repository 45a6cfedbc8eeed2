// concurrent_calls: N identical calls in parallel; the first good answer wins
// and the others are cancelled. All failing fails with the last error.

import { Deadline } from './abort.ts';
import type { Proxy, ProxyResponse } from './types.ts';

export function concurrentCalls(call: Proxy, n: number): Proxy {
  if (n <= 1) return call;
  return (req) => {
    const d = new Deadline(req.signal, 0);
    const child = { ...req, signal: d };
    return new Promise<ProxyResponse>((resolve, reject) => {
      let failures = 0;
      let winner: ProxyResponse | undefined;
      for (let i = 0; i < n; i++) {
        call(child).then(
          (r) => {
            if (winner) {
              // A streamed loser holds a connection until its body is consumed.
              r.passthrough?.discard();
              return;
            }
            winner = r;
            resolve(r);
            d.dispose();
            // A decoded answer is fully read, so cancelling the others is safe;
            // a streamed one still reads through the shared signal.
            if (!r.passthrough) d.abort();
          },
          (e) => {
            if (++failures === n) {
              d.dispose();
              reject(e);
            }
          },
        );
      }
    });
  };
}
