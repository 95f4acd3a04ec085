// Real Velo processes on loopback, for cluster tests: `node dist/src/main.js
// start …` per node (npm test builds dist first), killed with real signals.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetchTrusting } from '../../src/https/trust.js';
import { TcpProxy } from './tcp-proxy.js';
import { freePort } from '../../scripts/ports.js';
import { until } from '../../scripts/poll.js';

// Vitest runs this file from test/cluster/ (`npm test` builds dist/ first);
// `npm run torture` runs its compiled copy from dist/test/cluster/.
const COMPILED = /[\\/]dist[\\/]test[\\/]cluster[\\/][^\\/]+$/.test(fileURLToPath(import.meta.url));
const MAIN = fileURLToPath(new URL(COMPILED ? '../../src/main.js' : '../../dist/src/main.js', import.meta.url));

// Node ports come from below the kernel's ephemeral range (scripts/ports.ts says why).
export { freePort };

export interface ClusterNode {
  id: string;
  http: string;
  raft: string;
  proc: ChildProcess | null;
  output: string[];
  /** A node added with `join`: the member URL it joins through, and its args in place of the cluster's. */
  join?: { url: string; args: string[] };
}

/**
 * A secure cluster as the README sets one up: `velo certs` for every node id
 * it may run (n1..n9), each node with mutual TLS on the raft port, HTTPS with
 * its certificate, and the cluster's admin token file.
 */
class Security {
  readonly dir = mkdtempSync(join(tmpdir(), 'velo-secure-'));
  private readonly trusting: typeof fetch;

  constructor() {
    const names = Array.from({ length: 9 }, (_, i) => `n${i + 1}`);
    execFileSync(process.execPath, [MAIN, 'certs', '--out', this.dir, '--nodes', names.join(',')], { stdio: 'pipe' });
    this.trusting = fetchTrusting(readFileSync(join(this.dir, 'ca.crt'), 'utf8'));
  }

  get tokenFile(): string {
    return join(this.dir, 'admin.token');
  }

  args(id: string): string[] {
    const cert = join(this.dir, `${id}.crt`);
    const key = join(this.dir, `${id}.key`);
    const ca = join(this.dir, 'ca.crt');
    return ['--peer-ca', ca, '--peer-cert', cert, '--peer-key', key, '--tls-cert', cert, '--tls-key', key, '--ca', ca, '--admin-token-file', this.tokenFile];
  }

  /** fetch as a client that trusts the CA and, with `withToken`, sends the admin token (the file the nodes wrote). */
  client(withToken: boolean): typeof fetch {
    return (input: string | URL | Request, init: RequestInit = {}) => {
      const headers = new Headers(init.headers);
      if (withToken) headers.set('authorization', `Bearer ${readFileSync(this.tokenFile, 'utf8').trim()}`);
      return this.trusting(input, { ...init, headers: Object.fromEntries(headers.entries()) });
    };
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export class ProcessCluster {
  readonly nodes = new Map<string, ClusterNode>();

  /** With `secure`: the certificates and token, and the fetch that holds them. */
  private security: Security | null = null;

  /** With `proxied`, every directed link from→to goes through its own proxy, keyed `from>to`. */
  private readonly proxies = new Map<string, TcpProxy>();

  private constructor(
    private readonly extraArgs: string[],
    private readonly nodeArgs: (id: string) => string[],
  ) {}

  /**
   * With `secure`, every node runs with peer TLS, HTTPS and tokens, and
   * `fetch` (this cluster's, and the global one until `stop`) is a client
   * that trusts its CA and sends its admin token.
   */
  static async start(ids: string[], extraArgs: string[] = [], opts: { proxied?: boolean; nodeArgs?: (id: string) => string[]; secure?: boolean } = {}): Promise<ProcessCluster> {
    const c = new ProcessCluster(extraArgs, opts.nodeArgs ?? (() => []));
    if (opts.secure) c.secure();
    for (const id of ids) c.nodes.set(id, { id, http: `127.0.0.1:${await freePort()}`, raft: `127.0.0.1:${await freePort()}`, proc: null, output: [] });
    if (opts.proxied) {
      for (const from of ids) {
        for (const to of ids) {
          if (from === to) continue;
          const proxy = new TcpProxy('127.0.0.1', Number(c.node(to).raft.split(':')[1]));
          await proxy.start();
          c.proxies.set(`${from}>${to}`, proxy);
        }
      }
    }
    const started = await Promise.allSettled(ids.map((id) => c.startNode(id)));
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) {
      // The caller gets no cluster to stop: end the nodes that did start, and the proxies, here.
      await c.stop();
      throw failed.reason;
    }
    return c;
  }

  /** Cuts every link to and from `id` (needs `proxied`). */
  isolate(id: string): void {
    for (const [link, proxy] of this.proxies) if (link.split('>').includes(id)) proxy.partition();
  }

  heal(): void {
    for (const proxy of this.proxies.values()) proxy.heal();
  }

  /** The proxy of the directed link from→to (needs `proxied`). */
  link(from: string, to: string): TcpProxy {
    const p = this.proxies.get(`${from}>${to}`);
    if (!p) throw new Error(`no proxy for ${from}>${to}: start the cluster with proxied`);
    return p;
  }

  /** SIGSTOP: the process freezes, its sockets stay open (a long GC pause, a stalled VM). */
  pause(id: string): void {
    this.node(id).proc?.kill('SIGSTOP');
  }

  resume(id: string): void {
    this.node(id).proc?.kill('SIGCONT');
  }

  url(id: string, path: string): string {
    return `${this.security ? 'https' : 'http'}://${this.node(id).http}${path}`;
  }

  /**
   * Tests call the global fetch: while a secure cluster runs, it is the
   * secure client's (a test file runs one cluster at a time).
   */
  private secure(): void {
    const security = new Security();
    this.security = security;
    this.plainFetch = globalThis.fetch;
    globalThis.fetch = security.client(true);
  }

  /** A client that sends no token (and, for a secure cluster, trusts its CA). */
  fetchWithoutToken(input: string, init?: RequestInit): Promise<Response> {
    return (this.security ? this.security.client(false) : fetch)(input, init);
  }

  private plainFetch: typeof fetch | null = null;

  node(id: string): ClusterNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** Starts (or restarts) a node's process and resolves once it prints that it serves. */
  startNode(id: string): Promise<void> {
    const n = this.node(id);
    // The bootstrap members only: a node that joined later is no bootstrap peer.
    const peers = [...this.nodes.values()]
      .filter((m) => m.join === undefined)
      .map((m) => {
        const proxy = this.proxies.get(`${id}>${m.id}`);
        return `${m.id}=${proxy ? `127.0.0.1:${proxy.port}` : m.raft}`;
      })
      .join(',');
    const how = n.join ? ['--join', n.join.url, ...n.join.args] : ['--peers', peers, ...this.extraArgs];
    const proc = spawn(process.execPath, [MAIN, 'start', '--id', id, '--http', n.http, '--raft', n.raft, ...how, ...(this.security?.args(id) ?? []), ...this.nodeArgs(id)], { stdio: ['ignore', 'pipe', 'pipe'] });
    n.proc = proc;
    return new Promise((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        const text = chunk.toString();
        n.output.push(text);
        if (/serving https?:\/\//.test(text)) resolve();
      };
      proc.stdout!.on('data', onData);
      proc.stderr!.on('data', (c: Buffer) => n.output.push(c.toString()));
      proc.once('exit', (code, signal) => reject(new Error(`${id} exited (${code ?? signal}) before serving:\n${n.output.join('')}`)));
    });
  }

  /**
   * Adds node `id` on fresh ports and starts it with `--join joinUrl` instead
   * of `--peers`; `args` replace the cluster's extra args, because a joining
   * node refuses --partitions and --replicas (it takes them from the cluster).
   * `startNode(id)` restarts it the same way, on the same ports. Its raft
   * links are direct, even in a `proxied` cluster.
   */
  async join(id: string, joinUrl: string, args: string[] = []): Promise<void> {
    if (this.nodes.has(id)) throw new Error(`node ${id} is already in the cluster`);
    this.nodes.set(id, { id, http: `127.0.0.1:${await freePort()}`, raft: `127.0.0.1:${await freePort()}`, proc: null, output: [], join: { url: joinUrl, args } });
    await this.startNode(id);
  }

  /** SIGTERM: a clean stop; resolves once the process has exited. */
  async terminate(id: string): Promise<void> {
    const n = this.node(id);
    const proc = n.proc;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
    n.proc = null;
  }

  /** kill -9: no goodbye, memory lost. */
  async kill(id: string): Promise<void> {
    const n = this.node(id);
    const proc = n.proc;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
    n.proc = null;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.nodes.keys()].map((id) => this.kill(id)));
    await Promise.all([...this.proxies.values()].map((p) => p.close()));
    if (this.plainFetch) globalThis.fetch = this.plainFetch;
    this.plainFetch = null;
    this.security?.close();
    this.security = null;
  }

  /** Polls `check` until it holds: the condition is the synchronisation point, the pause only paces the polling. */
  until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
    return until(what, check, timeoutMs);
  }

  async allReady(ids = [...this.nodes.keys()]): Promise<void> {
    await this.until('every node ready', async () => {
      for (const id of ids) if ((await fetch(this.url(id, '/readyz'))).status !== 200) return false;
      return true;
    });
  }
}
