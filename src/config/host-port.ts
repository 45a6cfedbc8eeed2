// "host:port" addresses as Go writes them ("redis:6379", "[::1]:8090",
// ":8090"), parsed once for every namespace that takes one (redis pools, the
// syslog address, the metrics listener), and the lenient split of a Host header.

export interface HostPort {
  /** Without IPv6 brackets; "" only for a listen address with no host. */
  host: string;
  port: number;
}

export interface HostPortRules {
  /** The port when the text has none; without it a port is required. */
  defaultPort?: number;
  /** A listen address: the host may be empty (all interfaces) and the port 0 (any). */
  listen?: boolean;
}

const ADDRESS = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:/[\]]*))(?::(\d{1,5}))?$/;

/** The host and port of `text`, or undefined when it is not an address the rules accept. */
export function parseHostPort(text: string, rules: HostPortRules = {}): HostPort | undefined {
  const m = ADDRESS.exec(text);
  if (!m) return undefined;
  const host = m[1] ?? m[2];
  if (host === '' && !rules.listen) return undefined;
  if (m[3] === undefined) return rules.defaultPort === undefined ? undefined : { host, port: rules.defaultPort };
  const port = Number(m[3]);
  if (port > 65535 || (port === 0 && !rules.listen)) return undefined;
  return { host, port };
}

/** A Host header's name and port, as sent ("[::1]:80" keeps its brackets); never fails. */
export function splitHostHeader(host: string): { hostname: string; port: number | undefined } {
  const colon = host.lastIndexOf(':');
  if (colon < 0 || host.lastIndexOf(']') > colon) return { hostname: host, port: undefined };
  const port = Number(host.slice(colon + 1));
  return { hostname: host.slice(0, colon), port: Number.isInteger(port) && host.length > colon + 1 ? port : undefined };
}
