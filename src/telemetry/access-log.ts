// One access-log line per request (KrakenD logs every request unless
// router.disable_access_log). Lines are JSON on stdout, batched into one
// write per event-loop turn so logging stays off the request's critical path.

const PIPE_BUF = 4096;

export interface AccessLog {
  /** `requestId`: the X-Request-Id of a request that reached an endpoint. */
  record(method: string, path: string, status: number, startedAt: number, client: string, requestId?: string): void;
}

export function createAccessLog(opts: { disabled: boolean; skipPaths: string[]; out?: NodeJS.WritableStream }): AccessLog | undefined {
  if (opts.disabled) return undefined;
  const skip = new Set(opts.skipPaths);
  const out = opts.out ?? process.stdout;
  let pending: string[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    const lines = pending;
    pending = [];
    // Workers share stdout: a pipe write of at most PIPE_BUF (4096) bytes is atomic,
    // so writes are cut at line ends below that (counted in UTF-8 bytes: paths and
    // client addresses may hold non-ASCII) and lines never interleave. A single line
    // over 4096 bytes is written alone.
    let chunk = '';
    let bytes = 0;
    for (const line of lines) {
      const n = Buffer.byteLength(line);
      if (bytes + n > PIPE_BUF && chunk !== '') {
        out.write(chunk);
        chunk = '';
        bytes = 0;
      }
      chunk += line;
      bytes += n;
    }
    if (chunk !== '') out.write(chunk);
  };
  return {
    record(method, path, status, startedAt, client, requestId) {
      if (skip.has(path)) return;
      const ms = Math.round((performance.now() - startedAt) * 1000) / 1000;
      // A request id is either the client's (checked: only [A-Za-z0-9._:+=/-]) or a UUID: no escaping needed.
      const id = requestId === undefined ? '' : `,"request_id":"${requestId}"`;
      pending.push(`{"level":"info","time":"${new Date().toISOString()}","msg":"access","method":${JSON.stringify(method)},"path":${JSON.stringify(path)},"status":${status},"duration_ms":${ms},"client":${JSON.stringify(client)}${id}}\n`);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
  };
}
