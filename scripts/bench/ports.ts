// Loopback ports for the systems under test. They are taken below the
// kernel's ephemeral range: wrk opens hundreds of outgoing connections, and a
// port the kernel hands out for `listen(0)` is free only until an outgoing
// socket takes it as its local port.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const EPHEMERAL_LOW = (() => {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
})();
const PORTS_FROM = 20_000;
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
