import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/workflows/**/*.test.ts', 'test/support/**/*.test.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          // Temporal's native runtime: one per process, and worker threads ran out of wasm memory elsewhere.
          pool: 'forks',
          testTimeout: 180_000,
          hookTimeout: 180_000,
          // Two cores: integration files share Temporal, MinIO and PostgreSQL; run them one at a time.
          fileParallelism: false,
        },
      },
      {
        test: {
          // `npm run test:faults`: kills workers, Temporal, MinIO and sshd on purpose; minutes, not seconds.
          name: 'faults',
          include: ['test/faults/**/*.test.ts'],
          pool: 'forks',
          testTimeout: 300_000,
          hookTimeout: 300_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
