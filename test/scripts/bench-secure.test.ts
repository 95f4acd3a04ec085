// The benchmark's velo-secure row (issue 16): wrk's requests carry the bearer
// token, and only when there is one (the other systems' requests stay byte
// for byte what they were), over HTTPS when asked; and the report prices
// HTTPS with a token against plain HTTP, while results from before
// velo-secure render as they did.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { renderCharts } from '../../scripts/bench/charts.js';
import { authHeader, luaString, wrkScript } from '../../scripts/bench/lua.js';
import type { ScriptSettings } from '../../scripts/bench/lua.js';
import { renderMarkdown, securityCost } from '../../scripts/bench/report.js';
import type { BenchResults, FigureRecord } from '../../scripts/bench/results.js';
import { runFigure } from '../../scripts/bench/wrk.js';
import type { Figure } from '../../scripts/bench/wrk.js';
import { certFiles, writeCertificates } from '../../src/cli/certs.js';
import { generateSecret } from '../../src/node/tokens.js';

const SOURCE = join(import.meta.dirname, '../../scripts/bench');

describe('the Authorization header in the wrk scripts', () => {
  const settings: ScriptSettings = { protocol: 'velo', workload: 'writes', host: '127.0.0.1:1', keys: 10, valueBytes: 64, readPercent: 90, seed: 1 };

  test('a token gives one header line; no token gives nothing at all', () => {
    expect(authHeader('abc')).toBe('Authorization: Bearer abc\r\n');
    expect(authHeader(undefined)).toBe('');
    expect(() => authHeader('a b')).toThrow(/printable ASCII/);
    expect(() => authHeader('')).toThrow(/printable ASCII/);
  });

  test('Lua string literals cannot be ended early by what they hold', () => {
    expect(luaString('Authorization: Bearer x\r\n')).toBe('"Authorization: Bearer x\\013\\010"');
    expect(luaString('a"b\\c')).toBe('"a\\034b\\092c"');
    expect(luaString('')).toBe('""');
  });

  test('the script sets AUTH from the token, and every request builder uses it', () => {
    expect(wrkScript({ ...settings, token: 'tok' })).toContain('local AUTH = "Authorization: Bearer tok\\013\\010"\n');
    expect(wrkScript(settings)).toContain('local AUTH = ""\n');
    for (const protocol of ['velo', 'etcd'] as const) {
      const script = wrkScript({ ...settings, protocol });
      const builders = script.split('\n').filter((l) => /^\s*return "(GET|PUT|POST) /.test(l));
      expect(builders.length).toBeGreaterThan(0);
      for (const b of builders) expect(b).toContain('"\\r\\n" .. AUTH ..');
    }
  });
});

/** A server that answers every request 200 and keeps each one's raw text (after TLS, for HTTPS). */
class Recorder {
  readonly requests: string[] = [];
  constructor(readonly server: Server) {}

  static handle(recorder: () => Recorder): (socket: Socket) => void {
    return (socket) => {
      let buffered = '';
      socket.on('error', () => {});
      socket.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('latin1');
        for (;;) {
          const end = buffered.indexOf('\r\n\r\n');
          if (end < 0) return;
          const length = Number(/\r\ncontent-length: (\d+)/i.exec(buffered.slice(0, end))?.[1] ?? 0);
          const whole = end + 4 + length;
          if (buffered.length < whole) return;
          recorder().requests.push(buffered.slice(0, whole));
          buffered = buffered.slice(whole);
          socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
        }
      });
    };
  }

  get host(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return this;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const hasWrk = spawnSync('sh', ['-c', 'command -v wrk'], { stdio: 'ignore' }).status === 0;

// These drive the real wrk, as the benchmark does (`npm run bench` installs it with apt-get).
describe.skipIf(!hasWrk)('what wrk sends', () => {
  let dir: string;
  let plain: Recorder;
  let tls: Recorder;
  // A real secret, and one with the characters a Lua string literal must escape.
  const tokens = [generateSecret(), 'x"y\\z\'1'];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'velo-bench-test-'));
    await writeCertificates(dir, ['n1'], ['127.0.0.1'], []);
    plain = await new Recorder(createNetServer(Recorder.handle(() => plain))).listen();
    const credentials = { cert: readFileSync(join(dir, certFiles.nodeCert('n1'))), key: readFileSync(join(dir, certFiles.nodeKey('n1'))) };
    tls = await new Recorder(createTlsServer(credentials, Recorder.handle(() => tls))).listen();
  });
  afterAll(async () => {
    await Promise.all([plain?.close(), tls?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  async function measure(recorder: Recorder, workload: 'writes' | 'strong-reads', scheme: 'http' | 'https', token?: string): Promise<{ figure: Figure; requests: string[] }> {
    recorder.requests.length = 0;
    const h = recorder.host;
    const figure = await runFigure({
      protocol: 'velo',
      workload,
      targets: [h, h, h],
      connections: 3,
      valueBytes: 64,
      seconds: 1,
      keys: 100,
      readPercent: 90,
      scriptDir: dir,
      scheme,
      ...(token === undefined ? {} : { token }),
    });
    return { figure, requests: [...recorder.requests] };
  }

  function expectEvery(requests: string[], pattern: RegExp): void {
    expect(requests.length).toBeGreaterThan(10);
    const odd = requests.filter((r) => !pattern.test(r));
    expect(odd.slice(0, 3)).toEqual([]);
  }

  test('without a token, over http: the requests are what they always were', async () => {
    const h = escape(plain.host);
    const reads = await measure(plain, 'strong-reads', 'http');
    expectEvery(reads.requests, new RegExp(`^GET /v1/caches/default/items/k\\d+ HTTP/1\\.1\\r\\nHost: ${h}\\r\\n\\r\\n$`));
    const writes = await measure(plain, 'writes', 'http');
    expectEvery(writes.requests, new RegExp(`^PUT /v1/caches/default/items/k(\\d+) HTTP/1\\.1\\r\\nHost: ${h}\\r\\nContent-Type: application/octet-stream\\r\\nContent-Length: 64\\r\\n\\r\\nk\\1\\|x+$`));
    expect(writes.requests.every((r) => r.endsWith('\r\n\r\n' + r.slice(-64)))).toBe(true);
    expect(reads.figure.opsPerSec).toBeGreaterThan(0);
  });

  test.each(tokens)('with the token %s, over https: every request carries it', async (token) => {
    const h = escape(tls.host);
    const auth = escape(`Authorization: Bearer ${token}\r\n`);
    const reads = await measure(tls, 'strong-reads', 'https', token);
    expectEvery(reads.requests, new RegExp(`^GET /v1/caches/default/items/k\\d+ HTTP/1\\.1\\r\\nHost: ${h}\\r\\n${auth}\\r\\n$`));
    const writes = await measure(tls, 'writes', 'https', token);
    expectEvery(writes.requests, new RegExp(`^PUT /v1/caches/default/items/k(\\d+) HTTP/1\\.1\\r\\nHost: ${h}\\r\\n${auth}Content-Type: application/octet-stream\\r\\nContent-Length: 64\\r\\n\\r\\nk\\1\\|x+$`));
    expect(writes.figure.errors).toEqual({ connect: 0, read: 0, write: 0, status: 0, timeout: 0 });
  });
});

describe('the report: HTTPS with a token vs plain HTTP', () => {
  const committed = JSON.parse(readFileSync(join(SOURCE, 'results.json'), 'utf8')) as BenchResults;
  const figure = (opsPerSec: number, p99Ms: number): Figure => ({
    opsPerSec,
    requestsPerSec: opsPerSec,
    p50Ms: p99Ms / 4,
    p99Ms,
    requests: opsPerSec * 2,
    seconds: 2,
    errors: { connect: 0, read: 0, write: 0, status: 0, timeout: 0 },
  });
  const rec = (system: FigureRecord['system'], workload: FigureRecord['workload'], f: Figure | null, connections = 64): FigureRecord => ({
    system,
    workload,
    connections,
    valueBytes: 256,
    figure: f,
    foreignCores: 0,
    attempts: 1,
  });
  const run = (figures: FigureRecord[], systems: BenchResults['systems'] = [{ name: 'velo-mem' }, { name: 'velo-secure' }]): BenchResults => ({
    ...committed,
    systems,
    figures,
    memory: { skipped: '--skip-memory' },
  });
  const measured = run([
    rec('velo-mem', 'writes', figure(10_000, 4)),
    rec('velo-mem', 'strong-reads', figure(20_000, 2)),
    rec('velo-mem', 'writes', figure(3_000, 1), 16), // a sweep point: velo-secure has none
    rec('velo-secure', 'writes', figure(8_000, 5)),
    rec('velo-secure', 'strong-reads', figure(15_000, 3)),
  ]);
  const section = (md: string) => md.slice(md.indexOf('## HTTPS with a token'), md.indexOf('## Workloads'));

  test('the ratios are velo-secure’s figures over velo-mem’s', () => {
    expect(securityCost(measured).map((c) => [c.workload, c.opsRatio, c.p99Ratio])).toEqual([
      ['writes', 0.8, 1.25],
      ['strong-reads', 0.75, 1.5],
    ]);
    const md = section(renderMarkdown(measured));
    expect(md).toContain('| writes (PUT) | 10,000 | 8,000 | 0.80 × | 4.0 | 5.0 | 1.25 × |');
    expect(md).toContain('| strong reads | 20,000 | 15,000 | 0.75 × | 2.0 | 3.0 | 1.50 × |');
  });

  test('velo-secure has its own section, not a row of empty cells in the others or a line in the charts', () => {
    const md = renderMarkdown(measured);
    const rest = md.replace(section(md), '');
    expect(rest).not.toContain('velo-secure');
    for (const svg of Object.values(renderCharts(measured))) expect(svg).not.toContain('HTTPS');
  });

  test('a missing figure gives no ratio, and a skipped velo-secure says why', () => {
    const noPlain = run([rec('velo-secure', 'writes', figure(8_000, 5))], [{ name: 'velo-secure' }]);
    expect(securityCost(noPlain).map((c) => [c.opsRatio, c.p99Ratio])).toEqual([[null, null], [null, null]]);
    expect(section(renderMarkdown(noPlain))).toContain('| writes (PUT) | — | 8,000 | — | — | 5.0 | — |');
    expect(section(renderMarkdown(noPlain))).toContain('`velo-mem` was not measured in this run: no ratio.');
    const skipped = run([], [{ name: 'velo-mem' }, { name: 'velo-secure', skipped: 'could not be started: boom' }]);
    expect(section(renderMarkdown(skipped))).toContain('Skipped: could not be started: boom.');
  });

  test('results from before velo-secure (the committed results.json) render without the section, as before', () => {
    expect(committed.systems.map((s) => s.name)).not.toContain('velo-secure');
    const md = renderMarkdown(committed);
    expect(md).not.toContain('HTTPS with a token');
    expect(md).toContain('## Targets (issue 7)');
    expect(Object.keys(renderCharts(committed))).toHaveLength(4);
  });
});
