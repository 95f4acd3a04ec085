import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Simulation files are CPU-bound: one fork per core.
    pool: 'forks',
    testTimeout: 60_000,
  },
});
