// Measures what an item really costs in memory beyond the bytes the cache
// counts for it, to check ITEM_OVERHEAD_BYTES (src/cache/limits.ts) against.
// Not a test (its figure depends on the V8 version); run it by hand:
//   npx tsc --outDir /tmp/velo-measure --rootDir . test/cache/overhead.measure.ts \
//     --module nodenext --target es2022 --skipLibCheck --types node
//   node --expose-gc /tmp/velo-measure/test/cache/overhead.measure.js
import { CacheStateMachine, ITEM_OVERHEAD_BYTES } from '../../src/cache/index.js';

declare const gc: () => void;

function used(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

function measure(label: string, n: number, region: string | null, tags: string[], expires: boolean): void {
  const sm = new CacheStateMachine();
  const before = used();
  for (let i = 1; i <= n; i++) {
    sm.apply(i, {
      type: 'put',
      cache: 'default',
      region,
      key: `key-${i}`,
      value: new Uint8Array(16),
      contentType: 'application/json',
      expiresAt: expires ? 2_000_000 + i : null,
      tags,
      condition: { kind: 'none' },
      lockHandle: null,
      unlock: false,
      now: 1_000_000,
    });
  }
  const real = (used() - before) / n;
  const counted = sm.stats('default')!.bytes / n - ITEM_OVERHEAD_BYTES;
  console.log(`${label}: ${real.toFixed(0)} bytes per item in memory, ${counted.toFixed(0)} counted beyond the item overhead → real overhead ${(real - counted).toFixed(0)} (constant: ${ITEM_OVERHEAD_BYTES})`);
}

const N = 200_000;
measure('default space, no expiry', N, null, [], false);
measure('default space, expiring', N, null, [], true);
measure('region, 2 tags, expiring', N, 'region-1', ['tag-a', 'tag-b'], true);
