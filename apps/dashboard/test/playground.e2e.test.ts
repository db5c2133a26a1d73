import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { artifactsDir, type E2E, externalRequests, startE2E, watchPage, withFailureArtifacts } from './helpers.js';

let e2e: E2E;
beforeAll(async () => {
  e2e = await startE2E();
}, 600_000); // a first run may install chromium

afterAll(async () => {
  await e2e?.close();
});

describe('playground in headless chromium', () => {
  it('elects a leader; crashing it from the UI leads to a new leader', async () => {
    const page = await e2e.browser.newPage({ viewport: { width: 1300, height: 1000 } });
    const seen = watchPage(page);
    await withFailureArtifacts(page, 'playground', seen, async () => {
      await page.goto(`${e2e.server.url}?mode=playground&seed=3&nodes=5`);
      await page.selectOption('#pg-speed', '5');
      await page.waitForFunction(() => document.querySelector('#pg-leader')?.textContent !== 'none', undefined, {
        timeout: 30_000,
      });
      const first = (await page.textContent('#pg-leader'))!;
      expect(first).toMatch(/^n[1-5]$/);
      await expect.poll(() => page.getAttribute(`.pg-card[data-node="${first}"]`, 'data-role')).toBe('leader');
      const firstTerm = Number(await page.getAttribute(`.pg-card[data-node="${first}"]`, 'data-term'));
      await page.screenshot({ path: join(artifactsDir, 'playground-1-leader.png'), fullPage: true });

      await page.click(`button[data-act="crash"][data-node="${first}"]`);
      expect(await page.getAttribute(`.pg-card[data-node="${first}"]`, 'data-up')).toBe('false');
      // A crashed node is not offered leadership, and its crash mark does not hide its name: the mark is painted
      // first (under the texts, which carry a dark halo), and the label is still drawn and readable.
      expect(await page.isDisabled(`button[data-act="transfer"][data-node="${first}"]`)).toBe(true);
      expect(await page.getAttribute(`button[data-act="transfer"][data-node="${first}"]`, 'title')).toContain(
        'crashed',
      );
      const crashed = await page.evaluate((id) => {
        const g = document.querySelector(`g.node[data-node="${id}"]`)!;
        const label = g.querySelector('.node-label')!;
        const cross = g.querySelector('.node-cross')!;
        return {
          cls: g.getAttribute('class'),
          crossShown: getComputedStyle(cross).display !== 'none',
          labelAfterCross: Boolean(cross.compareDocumentPosition(label) & Node.DOCUMENT_POSITION_FOLLOWING),
          termAfterCross: Boolean(
            cross.compareDocumentPosition(g.querySelector('.node-term')!) & Node.DOCUMENT_POSITION_FOLLOWING,
          ),
          label: label.textContent,
          halo: getComputedStyle(label).paintOrder,
        };
      }, first);
      expect(crashed).toEqual({
        cls: 'node down',
        crossShown: true,
        labelAfterCross: true,
        termAfterCross: true,
        label: first,
        halo: 'stroke',
      });
      const box = (await page.locator(`g.node[data-node="${first}"] .node-circle`).boundingBox())!;
      await page.screenshot({
        path: join(artifactsDir, 'playground-crashed-node.png'),
        clip: { x: box.x - 10, y: box.y - 10, width: box.width + 20, height: box.height + 20 },
      });
      await page.waitForFunction(
        (old) => {
          const t = document.querySelector('#pg-leader')?.textContent;
          return t !== 'none' && t !== old;
        },
        first,
        { timeout: 30_000 },
      );
      const second = (await page.textContent('#pg-leader'))!;
      expect(second).not.toBe(first);
      expect(await page.getAttribute(`.pg-card[data-node="${second}"]`, 'data-role')).toBe('leader');
      expect(Number(await page.getAttribute(`.pg-card[data-node="${second}"]`, 'data-term'))).toBeGreaterThan(
        firstTerm,
      );
      await page.screenshot({ path: join(artifactsDir, 'playground-2-new-leader.png'), fullPage: true });
      // The election after the crash is listed as pre-votes (term unchanged) and one real candidacy per node and
      // new term, not as every pre-vote round being a candidacy in the crashed leader's term.
      const events = await page.locator('#pg-events li').allTextContents();
      const secondTerm = Number(await page.getAttribute(`.pg-card[data-node="${second}"]`, 'data-term'));
      expect(events.some((e) => / starts a pre-vote for term \d+$/.test(e))).toBe(true);
      expect(events.some((e) => e.endsWith(`${second} is a candidate in term ${secondTerm}`))).toBe(true);
      const crashLine = events.findIndex((e) => e.includes(`you: crash ${first}`));
      expect(crashLine).toBeGreaterThan(0); // still among the 40 lines shown (newest first)
      const sinceCrash = events.slice(0, crashLine);
      const candidacies = sinceCrash
        .map((e) => / (n\d) is a candidate in term (\d+)$/.exec(e))
        .filter((m) => m !== null);
      expect(candidacies.length).toBeGreaterThan(0);
      // A candidacy after the crash is in a new term: the old code listed pre-votes as candidacies in firstTerm.
      expect(candidacies.filter((m) => Number(m[2]) <= firstTerm).map((m) => m[0])).toEqual([]);
      expect(new Set(candidacies.map((m) => `${m[1]}@${m[2]}`)).size).toBe(candidacies.length);

      // Propose through the UI: the command reaches the new leader's log and its state machine.
      await page.fill('#pg-command', 'x=42');
      await page.click('#pg-propose');
      await expect.poll(() => page.textContent('#pg-outcome')).toContain(`${second} appended it`);
      await expect
        .poll(() => page.textContent(`.pg-card[data-node="${second}"] .applied`), { timeout: 30_000 })
        .toContain('x=42');

      // Partition: isolating the new leader (its card's button) cuts all its links, and the majority elects another.
      await page.click(`button[data-act="isolate"][data-node="${second}"]`);
      expect(await page.getAttribute(`.pg-card[data-node="${second}"]`, 'class')).toContain('isolated');
      const links = page.locator(`line.link[data-link*="${second}"]`);
      expect(await links.count()).toBe(4);
      for (let i = 0; i < 4; i++) expect(await links.nth(i).getAttribute('class')).toBe('link cut');
      await page.waitForFunction(
        (old) => ![null, 'none', ...old].includes(document.querySelector('#pg-leader')?.textContent ?? null),
        [first, second],
        { timeout: 30_000 },
      );
      // Clicking a link heals it (and clicking again cuts it).
      await links.first().dispatchEvent('click'); // (a real click could land on a crossing link or a message)
      expect(await links.first().getAttribute('class')).toBe('link');
      await page.screenshot({ path: join(artifactsDir, 'playground-3-partition.png'), fullPage: true });

      // The replay link reproduces the session: same seed, same actions, paused at the start.
      const href = (await page.getAttribute('#pg-replay', 'href'))!;
      expect(href).toContain('replay=');
      // @raft/sim's safety checker watched every action of the session and found nothing.
      expect(await page.getAttribute('#pg-safety', 'class')).toBe('safety ok');
      expect(externalRequests(seen.urls)).toEqual([]);
      expect(seen.errors).toEqual([]);
    });
    await page.close();
  });

  it('a replay link reproduces the same run', async () => {
    const page = await e2e.browser.newPage();
    const seen = watchPage(page);
    await withFailureArtifacts(page, 'playground-replay', seen, async () => {
      await page.goto(`${e2e.server.url}?mode=playground&seed=8&nodes=3`);
      await page.selectOption('#pg-speed', '20');
      await page.waitForFunction(() => document.querySelector('#pg-leader')?.textContent !== 'none', undefined, {
        timeout: 30_000,
      });
      // Actions taken while time runs freely (at whatever virtual instant the frame timing gives) must replay exactly.
      const leader = (await page.textContent('#pg-leader'))!;
      await page.click(`button[data-act="crash"][data-node="${leader}"]`);
      await page.fill('#pg-command', 'y=1');
      await page.click('#pg-propose');
      await page.waitForFunction(
        (old) => ![null, 'none', old].includes(document.querySelector('#pg-leader')?.textContent ?? null),
        leader,
        { timeout: 30_000 },
      );
      await page.click('#pg-pause');
      for (let i = 0; i < 20; i++) await page.click('#pg-step');
      // Drop a message in flight by clicking it (dispatched: it is a moving target), then run on a little.
      const dot = page.locator('circle.msg:not(.m-dropped)').first();
      for (let i = 0; i < 100 && (await dot.count()) === 0; i++) await page.click('#pg-step');
      expect(await dot.count()).toBe(1);
      const flight = await dot.getAttribute('data-flight');
      await dot.dispatchEvent('click');
      expect(await page.textContent('#pg-outcome')).toContain('dropped');
      expect(await page.getAttribute(`circle.msg[data-flight="${flight}"]`, 'class')).toBe('msg m-dropped');
      for (let i = 0; i < 20; i++) await page.click('#pg-step');
      const fingerprint = await page.evaluate(() =>
        (window as unknown as { playground: { fingerprint(): string } }).playground.fingerprint(),
      );
      const steps = await page.evaluate(
        () => (window as unknown as { playground: { steps: number } }).playground.steps,
      );
      const href = (await page.getAttribute('#pg-replay', 'href'))!;

      await page.goto(new URL(href, e2e.server.url).toString());
      const again = await page.evaluate((n) => {
        const p = (window as unknown as { playground: { steps: number; step(): boolean; fingerprint(): string } })
          .playground;
        while (p.steps < n && p.step()) {
          // run the same number of events as the original session
        }
        return p.fingerprint();
      }, steps);
      expect(again).toBe(fingerprint);
      expect(externalRequests(seen.urls)).toEqual([]);
      expect(seen.errors).toEqual([]);
    });
    await page.close();
  });
});
