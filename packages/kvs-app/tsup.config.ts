import { defineConfig } from 'tsup';

export default defineConfig([
  {
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    // Keep the CLI's files: the second build writes them to the same directory.
    clean: ['!cli.*'],
    target: 'es2022',
  },
  {
    // The `raft-kvs` bin (src/cli.ts starts with a #! line, which esbuild keeps).
    entry: ['src/cli.ts'],
    format: ['esm'],
    sourcemap: true,
    clean: false,
    target: 'es2022',
    platform: 'node',
  },
]);
