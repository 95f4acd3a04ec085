// Which addresses only this machine can reach, and which mean "every
// address": what protected mode (src/cli/protected-mode.ts) and the browser
// guard (api/browser-guard.ts) decide on.

import { isIP } from 'node:net';

/** localhost (and *.localhost, RFC 6761), 127.0.0.0/8 and ::1, also as ::ffff:127.x. Any other name may resolve anywhere. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || /^(0{1,4}:){7}0{0,3}1$/.test(h) || /^::ffff:127\./.test(h);
  return false;
}

/** 0.0.0.0 and :: listen on every address of the machine. */
export function isUnspecifiedHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === '0.0.0.0' || (isIP(h) === 6 && /^[0:]+$/.test(h));
}
