// Settings bound to the listening socket: a reload cannot change them, so the
// data plane says so instead of pretending they took effect.

import { isDeepStrictEqual } from 'node:util';
import type { ServiceConfig } from '../config/types.ts';

const LISTENER_SETTINGS: { key: keyof ServiceConfig; name: string }[] = [
  { key: 'port', name: 'port' },
  { key: 'listenIp', name: 'listen_ip' },
  { key: 'tls', name: 'tls' },
  { key: 'readTimeoutMs', name: 'read_timeout' },
  { key: 'writeTimeoutMs', name: 'write_timeout' },
  { key: 'idleTimeoutMs', name: 'idle_timeout' },
  { key: 'readHeaderTimeoutMs', name: 'read_header_timeout' },
];

export function restartOnlyChanges(before: ServiceConfig, after: ServiceConfig): string[] {
  return LISTENER_SETTINGS.filter(({ key }) => !isDeepStrictEqual(before[key], after[key])).map(({ name }) => name);
}
