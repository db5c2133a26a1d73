import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runThreeNodes } from '../examples/cluster.js';

describe('the driver loop and the cluster wiring from docs/core.md', () => {
  it('are quoted in docs/core.md exactly', () => {
    const doc = readFileSync(join(__dirname, '../../../docs/core.md'), 'utf8');
    for (const file of ['driver.ts', 'cluster.ts']) {
      const code = readFileSync(join(__dirname, '../examples', file), 'utf8');
      expect(doc, file).toContain(code.trim());
    }
  });

  it('runs a real-timer 3-node cluster with slow background fsyncs and commits every proposal everywhere', async () => {
    const commands = Array.from({ length: 100 }, (_, i) => `cmd${i}`);
    const applied = await runThreeNodes(commands);
    expect([...applied.keys()]).toEqual(['a', 'b', 'c']);
    for (const [id, log] of applied) expect(log, id).toEqual(commands);
  });
});
