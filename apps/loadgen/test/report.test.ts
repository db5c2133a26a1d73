import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  compact,
  cpuSeconds,
  measureFsyncRate,
  niceMax,
  renderBarChart,
  replaceRegion,
  residentBytes,
} from '../src/index.js';

describe('replaceRegion', () => {
  const doc = '# B\n\n<!-- x:start -->\nold\n<!-- x:end -->\n\ntail\n';
  it('replaces only between the markers', () => {
    expect(replaceRegion(doc, 'x', 'new\n')).toBe('# B\n\n<!-- x:start -->\nnew\n<!-- x:end -->\n\ntail\n');
  });
  it('appends a section with markers at the end when they are missing', () => {
    const out = replaceRegion('# B\n', 'y', 'body', '## Y');
    expect(out).toBe('# B\n\n## Y\n\n<!-- y:start -->\nbody\n<!-- y:end -->\n');
    expect(replaceRegion(out, 'y', 'again')).toBe('# B\n\n## Y\n\n<!-- y:start -->\nagain\n<!-- y:end -->\n');
  });
});

describe('chart', () => {
  it('formats axis values compactly and picks nice maxima', () => {
    expect(compact(12345)).toBe('12.3k');
    expect(compact(2_500_000)).toBe('2.50M');
    expect(compact(0.456)).toBe('0.46');
    expect(compact(0)).toBe('0');
    expect(niceMax(730)).toBe(1000);
    expect(niceMax(180)).toBe(200);
    expect(niceMax(0)).toBe(1);
  });

  it('draws one bar per system and concurrency with escaped labels', () => {
    const svg = renderBarChart({
      title: 'A <&> B',
      panels: [
        {
          title: 'Put',
          unit: 'ops/s',
          points: [
            { system: 'raft-kvs', concurrency: 1, value: 100 },
            { system: 'etcd', concurrency: 1, value: 50 },
            { system: 'raft-kvs', concurrency: 64, value: 20000 },
          ],
        },
      ],
    });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('A &lt;&amp;&gt; B');
    expect(svg.match(/<rect x=[^>]*><title>/g)).toHaveLength(3);
    expect(svg).toContain('20.0k');
    expect(svg).toContain('C = 64');
  });
});

describe('system probes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'loadgen-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('measures an fsync rate and leaves no file behind', () => {
    const r = measureFsyncRate(dir, 0.05);
    expect(r.ops).toBeGreaterThan(0);
    expect(r.perSecond).toBeCloseTo(r.ops / r.seconds, 6);
  });

  it('reads resident memory and CPU time of a live process, null for a missing one', () => {
    expect(residentBytes(process.pid)).toBeGreaterThan(1024 * 1024);
    expect(cpuSeconds(process.pid)).toBeGreaterThanOrEqual(0);
    expect(residentBytes(2 ** 30)).toBeNull();
    expect(cpuSeconds(2 ** 30)).toBeNull();
  });
});
