// The HTTP edge under generated requests (issue 16, "Inputs that can never
// hurt a node"): fast-check sends requests built from the real routes and
// from junk — methods, paths, names, query strings, headers, bodies of every
// kind, bad encodings, bad framing — to one node over real HTTP. Whatever it
// sends, the node never answers a 5xx other than 503/504, every non-2xx is
// in the contract's error format, a request answered 4xx changes nothing
// (the node's state is read before and after it: test/support/node-state.ts
// says what is compared), and the node keeps serving.
//
// Seeded and deterministic: VELO_HTTP_FUZZ_SEED and VELO_HTTP_FUZZ_RUNS
// replay or lengthen a run; the number of cases run is printed.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { httpRequest } from '../support/http-requests.js';
import { contractErrorProblem, nodeState } from '../support/node-state.js';
import { rawRequest } from '../support/raw-http.js';
import type { RawRequest } from '../support/raw-http.js';
import { serveNode } from '../support/served-node.js';
import type { Served } from '../support/served-node.js';

const PARTITIONS = 4;
/** The state machine's failures (src/cache/results.ts): a command applied that changed no item. */
const DECIDED_IN_THE_LOG = new Set(['not_found', 'cache_not_found', 'precondition_failed', 'locked', 'lock_not_held']);
const SEED = Number(process.env.VELO_HTTP_FUZZ_SEED ?? 16);
const RUNS = Number(process.env.VELO_HTTP_FUZZ_RUNS ?? 600);

let served: Served;
let port: number;

beforeAll(async () => {
  // As `velo start` serves on loopback without tokens: with the browser guard.
  served = await serveNode({ maxValueBytes: 4096, partitions: PARTITIONS, browserGuard: true });
  port = Number(new URL(served.base).port);
  // A second cache and an item in a region, so that requests find something to change or to refuse.
  expect((await fetch(`${served.base}/v1/caches/fz`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(201);
  expect((await fetch(`${served.base}/v1/caches/default/regions/r/items/k?tags=t1`, { method: 'PUT', body: 'v' })).status).toBe(201);
});

afterAll(async () => {
  await served.close();
});

function describeRequest(r: RawRequest): string {
  const target = r.target.length > 160 ? `${r.target.slice(0, 160)}…` : r.target;
  return `${r.method} ${target} ${JSON.stringify(r.headers ?? []).slice(0, 200)} body ${r.body?.length ?? 'none'}`;
}

describe('generated HTTP requests against one node', () => {
  test('never a 5xx but 503/504, every error in the contract format, no change on a 4xx, and the node keeps serving', async () => {
    const statuses = new Map<number, number>();
    let cases = 0;
    await fc.assert(
      fc.asyncProperty(httpRequest, async (req) => {
        cases++;
        const before = await nodeState(served.base, PARTITIONS);
        const res = await rawRequest(port, req);
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        const what = `${describeRequest(req)} → ${res.status} ${res.body.toString().slice(0, 200)}`;
        expect(res.status >= 500 && res.status !== 503 && res.status !== 504, what).toBe(false);
        if (res.status >= 300 && req.method !== 'HEAD') expect(contractErrorProblem(res.body.toString()), what).toBeNull();
        if (res.status >= 400 && res.status < 500) {
          const after = await nodeState(served.base, PARTITIONS);
          const code = (JSON.parse(res.body.toString() || '{}') as { error?: { code?: string } }).error?.code ?? '';
          // The state machine's refusals are decided in the log (API.md: a definite answer); every other one is the edge's.
          if (DECIDED_IN_THE_LOG.has(code)) expect(after.content, `content changed: ${what}`).toBe(before.content);
          else expect(after.full, `state changed: ${what}`).toBe(before.full);
        }
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
    // Still serving: ready, and a write reads back.
    expect((await fetch(`${served.base}/readyz`)).status).toBe(200);
    expect((await fetch(`${served.base}/v1/caches/default/items/after-fuzz`, { method: 'PUT', body: 'still here' })).status).toBeLessThan(300);
    expect(await (await fetch(`${served.base}/v1/caches/default/items/after-fuzz`)).text()).toBe('still here');
    const histogram = [...statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`).join(' ');
    console.log(`HTTP fuzz: ${cases} cases (seed ${SEED}); statuses ${histogram}`);
    expect(cases).toBe(RUNS);
  }, 240_000);
});
