import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // TF.js keeps one global engine per process: files run in separate forks, one at a time per core.
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
