// HTTP/1.1 over a plain socket, for requests fetch will not send: bad
// percent-encoding kept as is, odd methods, repeated headers, bytes that are
// not HTTP at all. One request per connection (Connection: close).
import { connect } from 'node:net';

export interface RawResponse {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
}

export interface RawRequest {
  method: string;
  /** Sent exactly as given, no encoding. */
  target: string;
  headers?: [string, string][];
  body?: Uint8Array;
}

/** The request's bytes: a Content-Length for any body, unless the headers already carry one. */
export function encodeRequest(r: RawRequest): Buffer {
  const headers = [...(r.headers ?? [])];
  const has = (n: string) => headers.some(([k]) => k.toLowerCase() === n);
  if (!has('host')) headers.unshift(['Host', '127.0.0.1']);
  if (r.body !== undefined && !has('content-length') && !has('transfer-encoding')) headers.push(['Content-Length', String(r.body.length)]);
  headers.push(['Connection', 'close']);
  const head = `${r.method} ${r.target} HTTP/1.1\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), r.body ?? Buffer.alloc(0)]);
}

function parseHead(head: string): { status: number; headers: Map<string, string> } {
  const [statusLine, ...lines] = head.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '');
  if (!m) throw new Error(`not an HTTP response: ${JSON.stringify(statusLine)}`);
  const headers = new Map<string, string>();
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
  }
  return { status: Number(m[1]), headers };
}

function dechunk(b: Buffer): Buffer | null {
  const out: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = b.indexOf('\r\n', at);
    if (eol < 0) return null;
    const size = parseInt(b.subarray(at, eol).toString('latin1'), 16);
    if (size === 0) return Buffer.concat(out);
    if (b.length < eol + 2 + size + 2) return null;
    out.push(b.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

/**
 * Sends `bytes` and reads one response. An event stream is answered once
 * its headers arrive (its body never ends), as is a HEAD (`headOnly`);
 * `timeoutMs` bounds the wait.
 */
export function rawExchange(port: number, bytes: Uint8Array, timeoutMs = 10_000, headOnly = false): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (err: Error | null, res?: RawResponse) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(res!);
    };
    const timer = setTimeout(() => finish(new Error(`no complete response within ${timeoutMs} ms`)), timeoutMs);
    const tryParse = (ended: boolean) => {
      const all = Buffer.concat(chunks);
      const end = all.indexOf('\r\n\r\n');
      if (end < 0) {
        if (ended) finish(new Error(`connection closed before a response (${all.length} bytes)`));
        return;
      }
      const { status, headers } = parseHead(all.subarray(0, end).toString('latin1'));
      const rest = all.subarray(end + 4);
      if (headOnly || (headers.get('content-type') ?? '').startsWith('text/event-stream')) return finish(null, { status, headers, body: Buffer.alloc(0) });
      const length = headers.get('content-length');
      if (length !== undefined) {
        if (rest.length >= Number(length)) return finish(null, { status, headers, body: rest.subarray(0, Number(length)) });
      } else if (headers.get('transfer-encoding') === 'chunked') {
        const body = dechunk(rest);
        if (body) return finish(null, { status, headers, body });
      } else if (ended || status === 204 || status === 304) {
        return finish(null, { status, headers, body: rest });
      }
      if (ended) finish(new Error(`connection closed mid-body (status ${status})`));
    };
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      tryParse(false);
    });
    socket.on('end', () => tryParse(true));
    socket.on('error', (e) => {
      // A server may close while we still send (a body it refused): what it answered, if anything, counts.
      if (chunks.length > 0) tryParse(true);
      finish(e);
    });
    // Not end(): Node's server aborts a request still being handled once the client half-closes.
    socket.write(bytes);
  });
}

export function rawRequest(port: number, r: RawRequest, timeoutMs?: number): Promise<RawResponse> {
  return rawExchange(port, encodeRequest(r), timeoutMs, r.method === 'HEAD');
}
