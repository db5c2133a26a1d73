/**
 * The live view in headless chromium against a real 3-node cluster (@raft/node-tcp servers started in this
 * process, see ./cluster.ts), watched by the page over the nodes' own WebSocket endpoints.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './cluster.js';
import { artifactsDir, type E2E, externalRequests, startE2E, watchPage, withFailureArtifacts } from './helpers.js';

let cluster: TestCluster;
let e2e: E2E;

beforeAll(async () => {
  cluster = await startCluster();
  e2e = await startE2E(cluster.addresses);
}, 600_000); // a first run may install chromium

afterAll(async () => {
  await e2e?.close();
  await cluster?.close();
});

describe('live view in headless chromium', () => {
  it('shows a 3-node cluster with one leader, runs every operator action, and reflects a leader kill', async () => {
    const page = await e2e.browser.newPage({ viewport: { width: 1300, height: 1100 } });
    const seen = watchPage(page);
    await withFailureArtifacts(page, 'live', seen, async () => {
      expect(e2e.server.url).toContain('?nodes=');
      await page.goto(e2e.server.url);

      // Three reachable nodes, exactly one leader, and the summary names it.
      await page.waitForFunction(
        () =>
          document.querySelectorAll('.node-card[data-status="up"]').length === 3 &&
          document.querySelectorAll('.node-card[data-role="leader"]').length === 1 &&
          document.querySelector('#live-leader')?.textContent !== 'none',
        undefined,
        { timeout: 20_000 },
      );
      const leader = (await page.textContent('#live-leader'))!;
      expect(await page.getAttribute(`.node-card[data-node="${leader}"]`, 'data-role')).toBe('leader');
      expect(await page.locator('.node-card[data-role="follower"]').count()).toBe(2);
      // The leader's card lists both followers' replication progress; every card shows membership.
      await expect.poll(() => page.locator(`.node-card[data-node="${leader}"] tr[data-follower]`).count()).toBe(2);
      const voters = (await page.textContent(`.node-card[data-node="${leader}"] dd[data-field="voters"]`))!;
      for (const a of cluster.addresses) expect(voters).toContain(a);
      // Commands are flowing, so the chart's rate becomes positive.
      await expect
        .poll(async () => Number(await page.textContent('#live-rate')), { timeout: 15_000 })
        .toBeGreaterThan(0);

      // Operator action: a snapshot on the leader, result shown on the page and visible in the node's state.
      await page.click('#op-snapshot');
      const result = page.locator('#op-results li[data-method="TakeSnapshot"]').first();
      await expect.poll(() => result.getAttribute('class'), { timeout: 15_000 }).toBe('ok');
      expect(await result.textContent()).toMatch(/snapshotIndex/);
      await expect
        .poll(() => page.textContent(`.node-card[data-node="${leader}"] dd[data-field="snapshot"]`), {
          timeout: 10_000,
        })
        .toMatch(/^index \d+/);
      await page.screenshot({ path: join(artifactsDir, 'live-1-cluster.png'), fullPage: true });

      // Operator action: transfer leadership to a chosen follower.
      const target = cluster.addresses.find((a) => a !== leader)!;
      await page.selectOption('#op-transfer-to', target);
      await page.click('#op-transfer');
      const transfer = page.locator('#op-results li[data-method="TransferLeadership"]').first();
      await expect.poll(() => transfer.getAttribute('class'), { timeout: 20_000 }).toBe('ok');
      expect(await transfer.textContent()).toContain(`"leader":"${target}"`);
      await expect.poll(() => page.textContent('#live-leader'), { timeout: 10_000 }).toBe(target);

      // Operator actions: add the spare server (it becomes a voter), then remove it again.
      const votersOf = (node: string) => page.textContent(`.node-card[data-node="${node}"] dd[data-field="voters"]`);
      await page.fill('#op-add-addr', cluster.spare);
      await page.click('#op-add');
      const add = page.locator('#op-results li[data-method="AddServer"]').first();
      await expect.poll(() => add.getAttribute('class'), { timeout: 30_000 }).toBe('ok');
      expect(await add.textContent()).toContain(cluster.spare);
      await expect.poll(() => votersOf(target), { timeout: 10_000 }).toContain(cluster.spare);
      await page.screenshot({ path: join(artifactsDir, 'live-2-four-voters.png'), fullPage: true });
      await page.fill('#op-remove-addr', cluster.spare);
      await page.click('#op-remove');
      const remove = page.locator('#op-results li[data-method="RemoveServer"]').first();
      await expect.poll(() => remove.getAttribute('class'), { timeout: 30_000 }).toBe('ok');
      await expect.poll(() => votersOf(target), { timeout: 10_000 }).not.toContain(cluster.spare);

      // Kill the leader (crash-like): the page must show it down and another node leading.
      const killedAt = Date.now();
      await cluster.kill(target);
      await page.waitForFunction(
        (old) => {
          const now = document.querySelector('#live-leader')?.textContent;
          return (
            document.querySelector(`.node-card[data-node="${old}"]`)?.getAttribute('data-status') === 'down' &&
            now !== 'none' &&
            now !== old &&
            document.querySelectorAll('.node-card[data-role="leader"]').length === 1
          );
        },
        target,
        { timeout: 20_000 },
      );
      const reflectedMs = Date.now() - killedAt;
      const next = (await page.textContent('#live-leader'))!;
      expect(next).not.toBe(target);
      expect(await page.getAttribute(`.node-card[data-node="${next}"]`, 'data-role')).toBe('leader');
      console.log(`[dashboard e2e] leader kill reflected on the page after ${reflectedMs} ms`);

      // The killed node keeps its last known state, greyed, with its last role and how long ago it was seen.
      const dead = `.node-card[data-node="${target}"]`;
      expect(await page.getAttribute(dead, 'data-last-role')).toBe('leader');
      expect(await page.textContent(`${dead} .badge.last`)).toBe('was leader');
      expect(await page.textContent(`${dead} dd[data-field="term"]`)).toMatch(/^\d+$/);
      await expect
        .poll(() => page.textContent(`${dead} [data-field="last-seen"]`), { timeout: 5000 })
        .toMatch(/^last seen \d+(\.\d)? s ago/);
      expect(
        await page.evaluate((sel) => getComputedStyle(document.querySelector(sel)!).opacity, `${dead} dl.state`),
      ).toBe('0.55');
      // Its lag on the new leader's card is unknown (no number, no bar), not the leader's growing log length.
      const deadRow = `.node-card[data-node="${next}"] tr[data-follower="${target}"]`;
      await expect
        .poll(() => page.getAttribute(`${deadRow} td[data-lag]`, 'data-lag'), { timeout: 5000 })
        .toBe('unknown');
      expect(await page.locator(`${deadRow} .lagbar`).count()).toBe(0);
      await page.screenshot({ path: join(artifactsDir, 'live-3-after-leader-kill.png'), fullPage: true });

      // Reconnection attempts back off (1 s, 2 s, 4 s, ...): three attempts by about 7 s after the kill, each one a
      // console error Chromium always logs, and the card counts them. (The old 250 ms..2 s backoff made 5 by then.)
      await page.waitForFunction(
        (sel) => /^3 reconnect attempts failed/.test(document.querySelector(sel)?.textContent ?? ''),
        `${dead} [data-field="reconnect"]`,
        { timeout: 15_000 },
      );
      const failures = seen.wsFailures.filter((f) => f.at >= killedAt && f.text.includes(target));
      console.log(
        `[dashboard e2e] ${failures.length} refused reconnections ${Date.now() - killedAt} ms after the kill`,
      );
      expect(failures.length).toBeGreaterThanOrEqual(3);
      expect(failures.length).toBeLessThanOrEqual(4); // the three attempts (+ the lost connection, if logged)
      expect(Date.now() - killedAt).toBeGreaterThan(6000);
      await page.screenshot({ path: join(artifactsDir, 'live-4-reconnect-backoff.png'), fullPage: true });

      // Restarted, the node is back on the page long before the next scheduled attempt (8 s away): its leader
      // reports it replicating again, and the page reconnects at once.
      const restartedAt = Date.now();
      await cluster.restart(target);
      await page.waitForFunction((sel) => document.querySelector(sel)?.getAttribute('data-status') === 'up', dead, {
        timeout: 5000,
      });
      console.log(`[dashboard e2e] restarted node back on the page after ${Date.now() - restartedAt} ms`);
      await expect
        .poll(() => page.getAttribute(`${deadRow} td[data-lag]`, 'data-lag'), { timeout: 10_000 })
        .toMatch(/^\d+$/);

      expect(externalRequests(seen.urls)).toEqual([]);
      expect(seen.errors).toEqual([]);
    });
    await page.close();
  });
});
