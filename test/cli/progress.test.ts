// The rebalance progress bar: renderBar's arithmetic, and followRebalance
// driven by a scripted sequence of cluster views (no network, no clock but a
// zero poll interval).
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { followRebalance, renderBar } from '../../src/cli/progress.js';
import type { ClusterView } from '../../src/cli/progress.js';

function view(inFlight: number, pending: number, node = 'n1'): ClusterView {
  return {
    node,
    members: [{ id: 'n1', http: '127.0.0.1:7001', raft: '127.0.0.1:7101', state: 'up', status: 'active', replicas: 0, leaders: 0 }],
    partitions: [],
    metadata: null,
    rebalance: { balanced: inFlight + pending === 0, movesInFlight: inFlight, movesPending: pending, maxConcurrentMoves: 2, moveBytesPerSecond: 67108864 },
  };
}

/** A fetchView that answers the script in order (an Error is thrown), then repeats its last entry. */
function scripted(steps: (ClusterView | Error)[]): { fetchView: () => Promise<ClusterView>; calls: () => number } {
  let i = 0;
  return {
    calls: () => i,
    fetchView: async () => {
      const step = steps[Math.min(i, steps.length - 1)]!;
      i++;
      if (step instanceof Error) throw step;
      return step;
    },
  };
}

function sink(): { out: Writable; text: () => string } {
  let text = '';
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return { out, text: () => text };
}

const balanced = (v: ClusterView) => v.rebalance.movesInFlight + v.rebalance.movesPending === 0;

/** The lines a TTY shows one after another: each redraw starts with CR and erase-line. */
const redraws = (text: string) => text.split('\r\x1b[2K').slice(1).map((l) => l.replace(/\n$/, ''));
const percents = (lines: string[]) => lines.filter((l) => /\d+%/.test(l)).map((l) => Number(/(\d+)%/.exec(l)![1]));
const counts = (lines: string[]) => lines.filter((l) => /\d+\/\d+ moves/.test(l)).map((l) => Number(/(\d+)\/\d+ moves/.exec(l)![1]));

describe('renderBar', () => {
  test('draws the done share of the width, the floor percentage and the counts', () => {
    expect(renderBar(3, 10)).toBe('[#########.....................]  30%  3/10 moves');
    expect(renderBar(1, 3, 10)).toBe('[###.......]  33%  1/3 moves');
    expect(renderBar(10, 10, 10)).toBe('[##########] 100%  10/10 moves');
    expect(renderBar(0, 7, 4)).toBe('[....]   0%  0/7 moves');
  });

  test('nothing to do is complete', () => {
    expect(renderBar(0, 0, 10)).toBe('[##########] 100%  0/0 moves');
  });

  test('clamps done into [0, total]', () => {
    expect(renderBar(12, 10, 10)).toBe('[##########] 100%  10/10 moves');
    expect(renderBar(-3, 10, 10)).toBe('[..........]   0%  0/10 moves');
  });

  test('only a complete bar reads 100%', () => {
    expect(renderBar(999, 1000, 30)).toContain(' 99%');
  });

  test('takes another unit', () => {
    expect(renderBar(12, 16, 8, 'partitions in place')).toBe('[######..]  75%  12/16 partitions in place');
  });
});

describe('followRebalance', () => {
  test('on a TTY redraws one line in place and ends it with a newline', async () => {
    const s = scripted([view(2, 2), view(2, 1), view(1, 0), view(0, 0)]);
    const o = sink();
    const last = await followRebalance('http://x', { out: o.out, tty: true, until: balanced, label: 'joining n4', pollMs: 0, fetchView: s.fetchView });
    expect(last.rebalance.movesPending).toBe(0);
    expect(o.text().includes('\n')).toBe(true);
    expect(o.text().endsWith('\n')).toBe(true);
    expect(o.text().indexOf('\n')).toBe(o.text().length - 1);
    expect(redraws(o.text())).toEqual([
      'joining n4 [..............................]   0%  0/4 moves',
      'joining n4 [#######.......................]  25%  1/4 moves',
      'joining n4 [######################........]  75%  3/4 moves',
      'joining n4 [##############################] 100%  4/4 moves',
    ]);
  });

  test('off a TTY prints one line per 10 % step', async () => {
    const steps = Array.from({ length: 101 }, (_, k) => view(0, 100 - k));
    const s = scripted(steps);
    const o = sink();
    await followRebalance('http://x', { out: o.out, tty: false, until: balanced, label: 'draining n2', pollMs: 0, fetchView: s.fetchView });
    const lines = o.text().trimEnd().split('\n');
    expect(o.text()).not.toContain('\r');
    expect(percents(lines)).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    expect(lines.at(-1)).toBe('draining n2 [##############################] 100%  100/100 moves');
  });

  test('the bar never goes backwards when new work appears: the total grows instead', async () => {
    const s = scripted([view(2, 8), view(2, 4), view(2, 8), view(1, 2), view(0, 0)]);
    const o = sink();
    await followRebalance('http://x', { out: o.out, tty: true, until: balanced, label: 'l', pollMs: 0, fetchView: s.fetchView });
    const lines = redraws(o.text());
    expect(lines.map((l) => /\d+\/\d+ moves/.exec(l)![0])).toEqual(['0/10 moves', '4/10 moves', '4/14 moves', '11/14 moves', '14/14 moves']);
    expect(percents(lines)).toEqual([0, 40, 40, 78, 100]);
  });

  test('work planned after an empty start fills the bar from zero', async () => {
    const s = scripted([view(0, 0), view(0, 4), view(1, 2), view(0, 0)]);
    const o = sink();
    await followRebalance('http://x', { out: o.out, tty: true, until: (v) => s.calls() > 3 && balanced(v), label: 'l', pollMs: 0, fetchView: s.fetchView });
    expect(redraws(o.text())).toEqual([
      'l [..............................]   0%  0/0 moves',
      'l [..............................]   0%  0/4 moves',
      'l [#######.......................]  25%  1/4 moves',
      'l [##############################] 100%  4/4 moves',
    ]);
  });

  test('for any sequence of remaining moves, the percentage and the done count never decrease', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat(40), { minLength: 1, maxLength: 30 }), fc.boolean(), async (remaining, tty) => {
        const s = scripted([...remaining.map((r) => view(Math.min(r, 2), r - Math.min(r, 2))), view(0, 0)]);
        const o = sink();
        await followRebalance('http://x', { out: o.out, tty, until: balanced, label: 'l', pollMs: 0, fetchView: s.fetchView });
        const lines = tty ? redraws(o.text()) : o.text().trimEnd().split('\n');
        for (const seq of [percents(lines), counts(lines)]) for (let i = 1; i < seq.length; i++) expect(seq[i]).toBeGreaterThanOrEqual(seq[i - 1]!);
        expect(percents(lines).at(-1)).toBe(100);
      }),
      { seed: 9, numRuns: 200 },
    );
  });

  test('a failed poll is retried, shown as waiting for the cluster', async () => {
    const refused = Object.assign(new Error('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
    const s = scripted([view(1, 3), refused, new Error('HTTP 503'), view(0, 1), view(0, 0)]);
    const o = sink();
    const last = await followRebalance('http://x', { out: o.out, tty: true, until: balanced, label: 'l', pollMs: 0, fetchView: s.fetchView });
    expect(balanced(last)).toBe(true);
    expect(redraws(o.text())).toEqual([
      'l [..............................]   0%  0/4 moves',
      'l waiting for the cluster (ECONNREFUSED)',
      'l waiting for the cluster (HTTP 503)',
      'l [######################........]  75%  3/4 moves',
      'l [##############################] 100%  4/4 moves',
    ]);
  });

  test('off a TTY an outage is one line, and the progress is printed again once the cluster answers', async () => {
    const s = scripted([view(0, 4), new Error('HTTP 503'), new Error('HTTP 503'), new Error('HTTP 502'), view(0, 4), view(0, 0)]);
    const o = sink();
    await followRebalance('http://x', { out: o.out, tty: false, until: balanced, label: 'l', pollMs: 0, fetchView: s.fetchView });
    expect(o.text().trimEnd().split('\n')).toEqual([
      'l [..............................]   0%  0/4 moves',
      'l waiting for the cluster (HTTP 503)',
      'l [..............................]   0%  0/4 moves',
      'l [##############################] 100%  4/4 moves',
    ]);
  });

  test('stops polling at the first view where until holds, and resolves with it', async () => {
    const s = scripted([view(1, 1), view(1, 0, 'goal'), view(0, 0), view(0, 0)]);
    const o = sink();
    const last = await followRebalance('http://x', { out: o.out, tty: false, until: (v) => v.node === 'goal', label: 'l', pollMs: 0, fetchView: s.fetchView });
    expect(last.node).toBe('goal');
    expect(s.calls()).toBe(2);
    expect(o.text().trimEnd().split('\n').at(-1)).toBe('l [###############...............]  50%  1/2 moves');
  });

  test('a goal already reached prints one complete line', async () => {
    const o = sink();
    await followRebalance('http://x', { out: o.out, tty: false, until: () => true, label: 'l', pollMs: 0, fetchView: scripted([view(0, 0)]).fetchView });
    expect(o.text()).toBe('l [##############################] 100%  0/0 moves\n');
  });

  test('asks the given base', async () => {
    const asked: string[] = [];
    await followRebalance('http://127.0.0.1:7002', {
      out: sink().out,
      tty: false,
      until: () => true,
      label: 'l',
      pollMs: 0,
      fetchView: async (base) => (asked.push(base), view(0, 0)),
    });
    expect(asked).toEqual(['http://127.0.0.1:7002']);
  });

  test('rejects with the abort reason when the signal aborts while waiting, and ends the TTY line', async () => {
    const ac = new AbortController();
    let calls = 0;
    let polled!: () => void;
    const firstPoll = new Promise<void>((resolve) => (polled = resolve));
    const o = sink();
    const following = followRebalance('http://x', {
      out: o.out,
      tty: true,
      until: balanced,
      label: 'l',
      signal: ac.signal,
      pollMs: 60_000,
      fetchView: async () => {
        calls++;
        polled();
        return view(1, 1);
      },
    });
    await firstPoll;
    // Once the pending promise callbacks have run, the loop is in its minute-long pause.
    await new Promise((resolve) => setImmediate(resolve));
    expect(redraws(o.text())).toEqual(['l [..............................]   0%  0/2 moves']);
    ac.abort(new Error('interrupted by SIGINT'));
    await expect(following).rejects.toThrow('interrupted by SIGINT');
    expect(calls).toBe(1);
    expect(o.text().endsWith('\n')).toBe(true);
  });

  test('rejects when the signal aborts during a poll that does not answer', async () => {
    const ac = new AbortController();
    const following = followRebalance('http://x', {
      out: sink().out,
      tty: false,
      until: balanced,
      label: 'l',
      signal: ac.signal,
      pollMs: 0,
      fetchView: () => (ac.abort(new Error('stop')), new Promise<ClusterView>(() => {})),
    });
    await expect(following).rejects.toThrow('stop');
  });
});
