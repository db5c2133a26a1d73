/**
 * Runs once before the dashboard's test files (which run in parallel): installs chromium if it is missing and
 * builds the page, so the browser tests neither race on apt nor on esbuild's output.
 */
import { buildPage, ensureChromium } from './helpers.js';

export default function setup(): void {
  ensureChromium();
  buildPage();
}
