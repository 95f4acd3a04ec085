// Loopback ports for nodes that scripts and tests start as processes. They
// are taken below the kernel's ephemeral range: a port the kernel hands out
// for `listen(0)` is free only until an outgoing socket (wrk, a client, a
// proxy) takes it as its local port, which happened between choosing a
// node's port and the node binding it. Each process starts at its own offset
// so that parallel ones rarely probe the same ports.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const EPHEMERAL_LOW = (() => {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
})();
const PORTS_FROM = 10_000;
const PORTS_TO = Math.max(PORTS_FROM + 1000, EPHEMERAL_LOW - 1);
let nextPort = PORTS_FROM + ((process.pid * 7919) % (PORTS_TO - PORTS_FROM));

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host: '127.0.0.1', exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** A TCP port on 127.0.0.1 that is free now and outside the ephemeral range. */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < PORTS_TO - PORTS_FROM; tries++) {
    const port = nextPort;
    nextPort = nextPort + 1 >= PORTS_TO ? PORTS_FROM : nextPort + 1;
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port in ${PORTS_FROM}–${PORTS_TO}`);
}

/** `--name N` from the command line: a positive integer, or `dflt` when absent. */
export function intFlag(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = Number(process.argv[i + 1]);
  if (!Number.isSafeInteger(v) || v <= 0) throw new Error(`--${name} must be a positive integer`);
  return v;
}
