// A no-op backend call on undici's dispatch API: the status and headers come
// back first; the body is then written straight into the client response as
// chunks arrive, pausing the upstream read while the client socket is full
// (back-pressure) and aborting it if the client goes away. No Readable stream
// or pipeline sits in between, which is most of what request() costs here.

import type { ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import type { Passthrough } from './types.ts';

export function requestStreamed(d: Dispatcher, opts: Dispatcher.DispatchOptions, signal: AbortSignal): Promise<Passthrough> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    let controller: Dispatcher.DispatchController | undefined;
    let started = false;
    let target: ServerResponse | undefined;
    let discarded = false;
    const early: Buffer[] = [];
    let ended = false;
    const onAbort = () => {
      const reason = signal.reason instanceof Error ? signal.reason : new Error('aborted');
      if (controller && !controller.aborted) controller.abort(reason);
      if (!started) reject(reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    const detach = () => signal.removeEventListener('abort', onAbort);

    const write = (c: Dispatcher.DispatchController, chunk: Buffer) => {
      if (!target!.write(chunk)) {
        c.pause();
        target!.once('drain', () => c.resume());
      }
    };

    d.dispatch(opts, {
      onRequestStart(c) {
        controller = c;
      },
      onResponseStart(c, status, headers) {
        started = true;
        resolve({
          status,
          headers: headers as Record<string, string | string[] | undefined>,
          pipe(res) {
            target = res;
            if (res.destroyed) {
              // The client left before the answer started: free the upstream connection.
              detach();
              if (!ended && !c.aborted) c.abort(new Error('client closed the connection'));
              return;
            }
            res.once('close', () => {
              if (!ended && !c.aborted) c.abort(new Error('client closed the connection'));
            });
            for (const chunk of early.splice(0)) write(c, chunk);
            if (ended) {
              detach();
              res.end();
            } else c.resume();
          },
          discard() {
            discarded = true;
            detach();
            if (!ended && !c.aborted) c.abort(new Error('response discarded'));
          },
        });
        // Hold the body until the caller attaches a response (or discards it).
        c.pause();
      },
      onResponseData(c, chunk) {
        if (discarded) return;
        if (target) write(c, chunk);
        else early.push(chunk);
      },
      onResponseEnd() {
        ended = true;
        if (target) {
          detach();
          target.end();
        }
      },
      onResponseError(_c, err) {
        detach();
        if (!started) reject(err);
        else if (target) target.destroy(err);
      },
    });
  });
}
