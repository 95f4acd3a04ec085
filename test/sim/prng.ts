// Seeded randomness for the simulation. Everything random in a run derives
// from one integer seed: each consumer (the network, each node incarnation,
// each client) gets its own stream, derived from the seed and a label, so
// adding a draw in one place does not shift every other stream.

import type { Rng } from '../../raft/types.js';

/** 32-bit FNV-1a of a string; a stable label hash (not for security). */
export function fnv1a32(text: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** SplitMix32 finaliser: spreads a 32-bit value over all bits. */
function mix32(x: number): number {
  x = (x + 0x9e3779b9) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0;
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** The seed of the stream named `label` under `seed`. */
export function deriveSeed(seed: number, label: string): number {
  return mix32(fnv1a32(label, mix32(seed >>> 0)));
}

/**
 * sfc32 (Chris Doty-Humphrey's Small Fast Counting generator): 128 bits of
 * state, passes PractRand, and is a few lines of integer arithmetic.
 */
export class Prng implements Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(readonly seed: number) {
    this.a = mix32(seed);
    this.b = mix32(this.a ^ 0x6a09e667);
    this.c = mix32(this.b ^ 0xbb67ae85);
    this.d = 1;
    for (let i = 0; i < 12; i++) this.next32(); // warm up
  }

  /** An independent stream for `label`, derived from this one's seed (not its state). */
  fork(label: string): Prng {
    return new Prng(deriveSeed(this.seed, label));
  }

  next32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.next32() / 4294967296;
  }

  /** Uniform integer in [0, n); n must be a positive integer. */
  int(n: number): number {
    if (!(n >= 1) || !Number.isInteger(n)) throw new Error(`Prng.int: bad bound ${n}`);
    return Math.floor(this.float() * n);
  }

  /** Uniform integer in [lo, hi], both inclusive. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return p > 0 && this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Prng.pick: empty list');
    return items[this.int(items.length)]!;
  }
}

/** An order-sensitive running hash of a run's events, to prove replays identical. */
export class TraceHash {
  private h = 0x811c9dc5;

  /** Mixes in non-negative integers (ids, terms, indexes, times). */
  add(...values: number[]): void {
    for (const v of values) {
      let x = v >>> 0;
      for (let i = 0; i < 4; i++) {
        this.h ^= x & 0xff;
        this.h = Math.imul(this.h, 0x01000193) >>> 0;
        x >>>= 8;
      }
    }
  }

  addString(text: string): void {
    this.h = fnv1a32(text, this.h);
  }

  value(): string {
    return this.h.toString(16).padStart(8, '0');
  }
}
