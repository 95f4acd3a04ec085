// The pieces of the fault harness that need no cluster: network faults held
// at once on the same links (healing one leaves the others in place), and
// what counts as faults on at the same time and as a kill that met a write.

import { describe, expect, test } from 'vitest';
import { coverageOf, landedMidWrite } from './coverage.js';
import { LinkFaults } from './inject.js';
import type { LinkControl } from './inject.js';
import type { Direction } from '../cluster/tcp-proxy.js';
import type { WriteInFlight } from './workload.js';

/** A proxy as TcpProxy behaves: setters add, heal clears everything. */
class FakeProxy implements LinkControl {
  cut = false;
  blocked = new Set<Direction>();
  delayMs = 0;
  bytesPerSecond = Infinity;
  heals = 0;
  partition(): void {
    this.cut = true;
  }
  block(dir: Direction): void {
    this.blocked.add(dir);
  }
  delay(ms: number): void {
    this.delayMs = ms;
  }
  throttle(bytesPerSecond: number): void {
    this.bytesPerSecond = bytesPerSecond;
  }
  heal(): void {
    this.heals++;
    this.cut = false;
    this.blocked.clear();
    this.delayMs = 0;
    this.bytesPerSecond = Infinity;
  }
  state(): string {
    return `cut=${this.cut} blocked=${[...this.blocked].sort().join(',')} delay=${this.delayMs} rate=${this.bytesPerSecond}`;
  }
}

function links(): { faults: LinkFaults; proxy: (from: string, to: string) => FakeProxy } {
  const proxies = new Map<string, FakeProxy>();
  const proxy = (from: string, to: string) => {
    const key = `${from}>${to}`;
    if (!proxies.has(key)) proxies.set(key, new FakeProxy());
    return proxies.get(key)!;
  };
  return { faults: new LinkFaults(proxy), proxy };
}

describe('network faults held at once', () => {
  test('healing a partition leaves a slow link that started before it slow, and the other way round', () => {
    const { faults, proxy } = links();
    const slow = faults.hold([['n1', 'n2', { delayMs: 80 }]]);
    const cut = faults.hold([['n1', 'n2', { cut: true }]]);
    expect(proxy('n1', 'n2').state()).toBe('cut=true blocked= delay=80 rate=Infinity');
    cut();
    expect(proxy('n1', 'n2').state()).toBe('cut=false blocked= delay=80 rate=Infinity');
    const cut2 = faults.hold([['n1', 'n2', { cut: true }]]);
    slow();
    expect(proxy('n1', 'n2').state()).toBe('cut=true blocked= delay=0 rate=Infinity');
    cut2();
    expect(proxy('n1', 'n2').state()).toBe('cut=false blocked= delay=0 rate=Infinity');
  });

  test('a link cut by two faults stays cut until both heal; a blocked direction until its fault heals', () => {
    const { faults, proxy } = links();
    const a = faults.hold([['n1', 'n2', { cut: true }]]);
    const b = faults.hold([
      ['n1', 'n2', { cut: true }],
      ['n2', 'n3', { block: 'forward' }],
    ]);
    const c = faults.hold([['n2', 'n3', { block: 'backward' }]]);
    a();
    expect(proxy('n1', 'n2').cut).toBe(true);
    b();
    expect(proxy('n1', 'n2').cut).toBe(false);
    expect(proxy('n2', 'n3').state()).toBe('cut=false blocked=backward delay=0 rate=Infinity');
    c();
    expect(proxy('n2', 'n3').state()).toBe('cut=false blocked= delay=0 rate=Infinity');
  });

  test('a link carries the longest delay and the thinnest rate held on it; tightening never heals it', () => {
    const { faults, proxy } = links();
    const slow = faults.hold([['n1', 'n2', { delayMs: 20, bytesPerSecond: 100_000 }]]);
    const slower = faults.hold([['n1', 'n2', { delayMs: 300, bytesPerSecond: 2_000 }]]);
    expect(proxy('n1', 'n2').state()).toBe('cut=false blocked= delay=300 rate=2000');
    expect(proxy('n1', 'n2').heals).toBe(0);
    slower();
    expect(proxy('n1', 'n2').state()).toBe('cut=false blocked= delay=20 rate=100000');
    slow();
    expect(proxy('n1', 'n2').state()).toBe('cut=false blocked= delay=0 rate=Infinity');
    // Releasing twice changes nothing.
    slow();
    expect(proxy('n1', 'n2').state()).toBe('cut=false blocked= delay=0 rate=Infinity');
  });
});

describe('what a run did', () => {
  test('faults overlap when one starts before the other has begun to heal, not when one ends as the other starts', () => {
    const c = coverageOf(
      [
        { label: 'pause n1', from: 0, to: 1000 },
        { label: 'halves at 1', from: 1000, to: 2000 },
        { label: 'slow links', from: 1500, to: 1600 },
      ],
      [],
    );
    expect(c.overlaps).toEqual(['halves at 1 + slow links']);
  });

  test('a kill met a write only if a write sent in full to the victim got no answer', () => {
    const w = (sent: boolean, answered: boolean | null): WriteInFlight => ({ op: 0, node: 'http://127.0.0.1:1', method: 'PUT', path: '/k', sent, answered });
    const kill = (writes: WriteInFlight[]) => coverageOf([], [{ nodes: ['n1'], writes, fellBack: false }]);
    expect(landedMidWrite(kill([]))).toBe(false);
    expect(landedMidWrite(kill([w(true, true)]))).toBe(false); // answered before the kill
    expect(landedMidWrite(kill([w(false, false)]))).toBe(false); // never reached the node
    expect(landedMidWrite(kill([w(true, true), w(true, false)]))).toBe(true);
  });
});
