// What the LevelDB storage tests share: stores in temp directories closed
// after each test, a bootstrap configuration, generated entries, and a dump
// of everything a restart must find again.

import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach } from 'vitest';
import type { ConfState, Entry } from '../../raft/index.js';
import type { LevelGroupStorage } from '../../storage/level-storage.js';
import { LevelStore } from '../../storage/level-store.js';

/** Temp directories and stores for one test file: stores close after each test, directories go after the file. */
export function levelFixtures(prefix: string): { tempDir(): Promise<string>; openStore(dir: string, opts?: { clusterId: string; nodeId: string }): Promise<LevelStore> } {
  const dirs: string[] = [];
  const open: LevelStore[] = [];
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  return {
    async tempDir() {
      const d = await mkdtemp(path.join(tmpdir(), prefix));
      dirs.push(d);
      return d;
    },
    async openStore(dir, opts = { clusterId: 'c', nodeId: 'n1' }) {
      const s = await LevelStore.open(dir, opts);
      open.push(s);
      return s;
    },
  };
}

export const conf: ConfState = { voters: ['n1', 'n2', 'n3'], learners: [] };

export function ents(from: number, to: number, term: number, tag = ''): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push({ index: i, term, type: i % 2, data: new TextEncoder().encode(`${tag}e${i}`) });
  return out;
}

/** Everything a restart must find again (snapshot data by hash: deep-comparing MiBs is slow). */
export function dump(g: LevelGroupStorage) {
  const first = g.firstIndex();
  const last = g.lastIndex();
  const { metadata, data } = g.snapshot();
  return {
    initial: g.initialState(),
    first,
    last,
    snapshot: { metadata, bytes: data.length, sha: createHash('sha256').update(data).digest('hex') },
    entries: last >= first ? g.entries(first, last + 1, Infinity) : [],
  };
}
