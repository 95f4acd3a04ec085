import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Simulation files are CPU-bound: one fork per core.
    pool: 'forks',
    // vitest's default leaves one of the two cores idle.
    maxWorkers: 2,
    testTimeout: 60_000,
  },
});
