import { defineConfig, mergeConfig } from 'vitest/config';
import shared from '../../vitest.shared';

// The example property test quoted in docs/simulation.md lives in examples/ and runs with the package's tests
// (mergeConfig appends this include to the shared one).
export default mergeConfig(shared, defineConfig({ test: { include: ['examples/**/*.test.ts'] } }));
