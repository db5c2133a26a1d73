import { defineConfig, mergeConfig } from 'vitest/config';
import shared from '../../vitest.shared';

export default mergeConfig(
  shared,
  defineConfig({
    // Chromium install (first run only) and the page build happen once, before the browser tests start.
    test: { globalSetup: ['./test/global-setup.ts'] },
  }),
);
