import { defineConfig } from 'tsup';

// Only the Node side (the static server and its CLI) goes through tsup; the browser bundle is built by
// build-web.mjs with esbuild into dist/web. `clean` stays off so the two builds never delete each other's output.
export default defineConfig({
  entry: ['src/index.ts', 'src/cli.ts'],
  format: ['esm'],
  dts: { entry: 'src/index.ts' },
  sourcemap: true,
  clean: false,
  target: 'es2022',
  platform: 'node',
});
