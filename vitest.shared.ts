// Shared vitest settings: tests import workspace packages from their TypeScript sources,
// so `pnpm test` never needs a prior build.
import { resolve } from 'node:path';
import { defineConfig } from 'vitest/config';

const root = __dirname;
const pkg = (name: string) => resolve(root, 'packages', name, 'src', 'index.ts');

export default defineConfig({
  resolve: {
    alias: {
      '@raft/core': pkg('core'),
      '@raft/sim': pkg('sim'),
      '@raft/storage-jsonl': pkg('storage-jsonl'),
      '@raft/node-tcp': pkg('node-tcp'),
      '@raft/runtime': pkg('runtime'),
      '@raft/kvs-app': pkg('kvs-app'),
      '@raft/linearizability': pkg('linearizability'),
      '@raft/testkit': pkg('testkit'),
    },
  },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
