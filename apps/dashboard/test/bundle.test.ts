import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { appDir } from './helpers.js';

// The page is built by test/global-setup.ts before any test file runs.
const web = join(appDir, 'dist', 'web');

describe('the built page', () => {
  it('references nothing on the internet (no CDN, no web fonts, no remote images)', () => {
    const allowed = new Set(['http://www.w3.org/2000/svg']); // an XML namespace name, never fetched
    for (const f of ['index.html', 'app.js', 'style.css']) {
      const text = readFileSync(join(web, f), 'utf8');
      const urls = [...text.matchAll(/\b(?:https?|wss?):\/\/[^\s"'`)<>]+/g)].map((m) => m[0]);
      // The only other URL is the template of the WebSocket to a watched node (`ws://${address}/`).
      const foreign = urls.filter((u) => !allowed.has(u) && !u.startsWith('ws://${'));
      expect(foreign, f).toEqual([]);
      expect(text, f).not.toMatch(/@import|@font-face|\/\/[a-z0-9.-]+\.(?:com|net|org|io)\b(?!\/2000\/svg)/i);
    }
  });

  it('is a classic script, so the playground also works opened from disk', () => {
    expect(readFileSync(join(web, 'index.html'), 'utf8')).toContain('<script defer src="app.js"></script>');
    expect(readFileSync(join(web, 'app.js'), 'utf8')).not.toMatch(/^\s*(?:import|export)\s/m);
  });
});
