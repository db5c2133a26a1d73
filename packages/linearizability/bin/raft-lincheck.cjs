#!/usr/bin/env node
// The bin is this committed file rather than dist/cli.cjs itself: pnpm links the bins of workspace dependencies when
// it installs, before anything is built, and warns "Failed to create bin" for a target that does not exist yet.
// CommonJS, like the bundle it loads: require() of one file starts faster than the ESM loader (see tsup.config.ts).
require('../dist/cli.cjs');
