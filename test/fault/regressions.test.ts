// Schedules that once failed, kept in test/fault/findings/ and replayed here
// (each as many times as its file says: a real cluster's interleaving is not
// replayable, so a timing-dependent failure needs a few tries to show). The
// root cause of each is pinned down by a deterministic test of its own; these
// replays check the whole system on the schedule that found it.
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { runSchedule } from './run.js';
import type { Schedule } from './schedule.js';

const DIR = fileURLToPath(new URL('./findings/', import.meta.url));

interface Finding {
  issue: string;
  what: string;
  replays: number;
  schedule: Schedule;
}

const findings = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => ({ file: f, ...(JSON.parse(readFileSync(DIR + f, 'utf8')) as Finding) }));

describe('schedules that once failed', () => {
  test('there are some to replay', () => {
    expect(findings.length).toBeGreaterThan(0);
  });

  for (const f of findings) {
    test(`${f.file} (issue ${f.issue}) passes ${f.replays} replays`, async () => {
      const failures: string[] = [];
      const definite: number[] = [];
      for (let i = 0; i < f.replays; i++) {
        const r = await runSchedule(f.schedule, { log: (line) => process.stdout.write(`${f.file} #${i + 1}: ${line}\n`) });
        if (!r.ok) failures.push(`replay ${i + 1}: ${r.failure}`);
        definite.push(r.definite);
        process.stdout.write(`${f.file} replay ${i + 1}/${f.replays}: ${r.ok ? 'ok' : 'FAILED'}, ${r.definite} definite answers in ${r.seconds.toFixed(1)} s\n`);
      }
      expect(failures, f.what).toEqual([]);
      // A replay whose clients got (next to) no answer checked nothing.
      expect(definite.filter((n) => n < 10), 'replays with fewer than 10 definite answers').toEqual([]);
    }, f.replays * 120_000);
  }
});
