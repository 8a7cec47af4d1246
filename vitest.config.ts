import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The command line the tests spawn runs the TypeScript sources, never a
    // dist/cli bundle (test/cli/build.test.ts checks that one against them).
    env: { DMABUF_CHECK_SOURCES: '1' },
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
