import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Test files run in parallel on every core already; threaded wasm would only contend.
    env: { HARDEN_WASM_THREADS: '1' },
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
