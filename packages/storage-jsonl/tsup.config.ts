import { defineConfig } from 'tsup';

export default defineConfig([
  {
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    // Keep the CLI's files: the second build writes them to the same directory concurrently.
    clean: ['!inspect-cli.*'],
    target: 'es2022',
  },
  {
    entry: ['src/inspect-cli.ts'],
    format: ['esm'],
    sourcemap: true,
    clean: false,
    target: 'es2022',
    platform: 'node',
    banner: { js: '#!/usr/bin/env node' },
  },
]);
