import { isIP } from 'node:net';

/** "10.0.0.1", "10.0.0.0/8", "::1", "fd00::/8". */
export function isIpOrCidr(text: string): boolean {
  const [address, bits, ...rest] = text.split('/');
  const version = isIP(address ?? '');
  if (version === 0 || rest.length > 0) return false;
  if (bits === undefined) return true;
  const max = version === 4 ? 32 : 128;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= max;
}
