import { defineConfig } from 'tsup';

// Only the Node side (the static server and its CLI) goes through tsup; the browser bundle is built by
// build-web.mjs with esbuild into dist/web, after tsup (whose `clean` empties dist first: `pnpm build` runs both).
// No .d.ts: this private package's "types" point at src/index.ts (workspace consumers typecheck from source).
export default defineConfig({
  entry: ['src/index.ts', 'src/cli.ts'],
  format: ['esm'],
  sourcemap: true,
  clean: true,
  target: 'es2022',
  platform: 'node',
});
