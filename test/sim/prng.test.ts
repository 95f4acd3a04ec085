import { describe, expect, test } from 'vitest';
import { Prng, TraceHash, deriveSeed } from './prng.js';

function draws(rng: Prng, n: number): number[] {
  return Array.from({ length: n }, () => rng.next32());
}

describe('Prng', () => {
  test('the same seed gives the same stream', () => {
    expect(draws(new Prng(42), 100)).toEqual(draws(new Prng(42), 100));
  });

  test('different seeds give different streams', () => {
    expect(draws(new Prng(1), 20)).not.toEqual(draws(new Prng(2), 20));
  });

  test('a fork depends on the seed and label, not on how much the parent drew', () => {
    const a = new Prng(7);
    const b = new Prng(7);
    draws(b, 50);
    expect(draws(a.fork('node:n1:1'), 10)).toEqual(draws(b.fork('node:n1:1'), 10));
    expect(draws(a.fork('node:n1:1'), 10)).not.toEqual(draws(a.fork('node:n1:2'), 10));
    expect(deriveSeed(7, 'x')).toBe(deriveSeed(7, 'x'));
  });

  test('int(n) stays in [0, n) and covers it roughly evenly', () => {
    const rng = new Prng(3);
    const counts = new Array(10).fill(0) as number[];
    for (let i = 0; i < 20_000; i++) {
      const v = rng.int(10);
      expect(v >= 0 && v < 10 && Number.isInteger(v)).toBe(true);
      counts[v]!++;
    }
    for (const c of counts) expect(Math.abs(c - 2000)).toBeLessThan(250);
  });

  test('range, chance and pick respect their bounds', () => {
    const rng = new Prng(9);
    for (let i = 0; i < 1000; i++) {
      const r = rng.range(3, 5);
      expect(r >= 3 && r <= 5).toBe(true);
      expect(['a', 'b']).toContain(rng.pick(['a', 'b']));
    }
    expect(rng.chance(0)).toBe(false);
    expect(rng.chance(1)).toBe(true);
    expect(() => rng.int(0)).toThrow();
    expect(() => rng.pick([])).toThrow();
  });
});

describe('TraceHash', () => {
  test('is order-sensitive and reproducible', () => {
    const a = new TraceHash();
    const b = new TraceHash();
    const c = new TraceHash();
    a.add(1, 2, 3);
    b.add(1, 2, 3);
    c.add(3, 2, 1);
    expect(a.value()).toBe(b.value());
    expect(a.value()).not.toBe(c.value());
  });
});
