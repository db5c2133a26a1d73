#!/usr/bin/env node
// The bin is this committed file rather than dist/cli.js itself: pnpm links the bins of workspace dependencies when it
// installs, before anything is built, and warns "Failed to create bin" for a target that does not exist yet.
import '../dist/cli.js';
