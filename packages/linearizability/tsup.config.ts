import { defineConfig } from 'tsup';

export default defineConfig([
  // The library: ESM and CommonJS, with types; @raft/runtime stays a dependency.
  {
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    target: 'es2022',
  },
  // The CLI and its worker thread: each one self-contained CommonJS file (canonicalJson bundled from @raft/runtime,
  // the rest of the runtime tree-shaken away). Start-up is most of the time on a small history: one file read with
  // require skips the ESM loader's resolution and the runtime's module graph (about 10 + 40 ms measured here).
  {
    entry: ['src/cli.ts', 'src/worker.ts'],
    format: ['cjs'],
    sourcemap: true,
    target: 'es2022',
    noExternal: ['@raft/runtime'],
    splitting: false,
    // import.meta.url in the CommonJS build: the CLI finds its worker file next to itself.
    shims: true,
  },
]);
