/**
 * A dependency-free SVG bar chart for benchmark results: one panel per metric, bars grouped by concurrency, one
 * colour per system. Written by hand so the benchmark needs no plotting package and the image diffs as text.
 */

/** One measured point: a system at a concurrency. */
export interface ChartPoint {
  /** Legend name of the system measured (e.g. `raft-kvs`, `etcd`); each distinct name gets one bar colour. */
  readonly system: string;
  /** The bar group it belongs to, labelled `C = <n>`; groups are sorted by increasing concurrency. */
  readonly concurrency: number;
  /** Bar height, in the panel's `unit`; the axis runs from 0 to a rounded-up maximum of the panel's values. */
  readonly value: number;
}

/** One panel: a title, a unit for the value labels and its points. */
export interface ChartPanel {
  /** Bold heading above the panel, e.g. `Throughput` or `p99 latency`. */
  readonly title: string;
  /** Appended to value labels, e.g. `ms`; throughput panels use `ops/s` and get k/M suffixes. */
  readonly unit: string;
  /** The bars; at most one per system and concurrency (a missing combination just has no bar). */
  readonly points: readonly ChartPoint[];
}

/** Options of {@link renderBarChart}. */
export interface ChartOptions {
  /** Heading at the top of the image. */
  readonly title: string;
  /** A smaller grey line under the title (e.g. the machine and setup); omitted, the panels move up. */
  readonly subtitle?: string;
  /** The panels, laid out left to right, `columns` per row. */
  readonly panels: readonly ChartPanel[];
  /** Panels per row (default 2). */
  readonly columns?: number;
  /** Colours per system, in legend order (default: two colour-blind-safe colours). */
  readonly colors?: Readonly<Record<string, string>>;
}

const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9'];

const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Formats a value compactly: 1234 → `1.23k`, 0.456 → `0.46`, 12345678 → `12.3M`. */
export function compact(value: number): string {
  const a = Math.abs(value);
  if (a === 0) return '0';
  if (a >= 1e6) return `${(value / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${(value / 1e3).toPrecision(3)}k`;
  if (a >= 100) return value.toFixed(0);
  if (a >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

/** A "nice" axis maximum at or above `max` (1, 2, 2.5 or 5 times a power of ten). */
export function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

/** Renders the panels as a standalone SVG document. */
export function renderBarChart(options: ChartOptions): string {
  const columns = options.columns ?? 2;
  const panelW = 460;
  const panelH = 260;
  const top = options.subtitle ? 84 : 64;
  const rows = Math.ceil(options.panels.length / columns);
  const width = columns * panelW + 20;
  const height = top + rows * panelH + 10;
  const systems: string[] = [];
  for (const p of options.panels) for (const pt of p.points) if (!systems.includes(pt.system)) systems.push(pt.system);
  const color = (s: string) => options.colors?.[s] ?? PALETTE[systems.indexOf(s) % PALETTE.length];
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="26" text-anchor="middle" font-size="17" font-weight="bold">${esc(options.title)}</text>`,
  );
  if (options.subtitle) {
    out.push(`<text x="${width / 2}" y="46" text-anchor="middle" fill="#555">${esc(options.subtitle)}</text>`);
  }
  // Legend.
  let lx = width / 2 - systems.length * 60;
  const ly = top - 22;
  for (const s of systems) {
    out.push(`<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${color(s)}"/>`);
    out.push(`<text x="${lx + 17}" y="${ly}">${esc(s)}</text>`);
    lx += 120;
  }
  options.panels.forEach((panel, i) => {
    const ox = 10 + (i % columns) * panelW;
    const oy = top + Math.floor(i / columns) * panelH;
    const plotX = ox + 58;
    const plotY = oy + 28;
    const plotW = panelW - 80;
    const plotH = panelH - 70;
    const max = niceMax(Math.max(0, ...panel.points.map((p) => p.value)));
    out.push(
      `<text x="${ox + panelW / 2}" y="${oy + 14}" text-anchor="middle" font-weight="bold">${esc(panel.title)}</text>`,
    );
    for (let g = 0; g <= 4; g++) {
      const y = plotY + plotH - (g / 4) * plotH;
      out.push(`<line x1="${plotX}" y1="${y}" x2="${plotX + plotW}" y2="${y}" stroke="${g ? '#e5e5e5' : '#333'}"/>`);
      out.push(`<text x="${plotX - 6}" y="${y + 4}" text-anchor="end" fill="#555">${compact((max * g) / 4)}</text>`);
    }
    const concurrencies = [...new Set(panel.points.map((p) => p.concurrency))].sort((a, b) => a - b);
    const groupW = plotW / Math.max(1, concurrencies.length);
    const barW = Math.min(44, (groupW * 0.8) / Math.max(1, systems.length));
    concurrencies.forEach((c, gi) => {
      const gx = plotX + gi * groupW + groupW / 2;
      out.push(`<text x="${gx}" y="${plotY + plotH + 18}" text-anchor="middle">C = ${c}</text>`);
      systems.forEach((s, si) => {
        const pt = panel.points.find((p) => p.system === s && p.concurrency === c);
        if (!pt) return;
        const h = max > 0 ? (pt.value / max) * plotH : 0;
        const x = gx - (systems.length * barW) / 2 + si * barW;
        const y = plotY + plotH - h;
        out.push(
          `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(barW - 3).toFixed(1)}" height="${h.toFixed(1)}" fill="${color(s)}"><title>${esc(`${s} C=${c}: ${pt.value} ${panel.unit}`)}</title></rect>`,
        );
        out.push(
          `<text x="${(x + (barW - 3) / 2).toFixed(1)}" y="${(y - 4).toFixed(1)}" text-anchor="middle" font-size="10">${compact(pt.value)}</text>`,
        );
      });
    });
    out.push(
      `<text x="${plotX + plotW / 2}" y="${plotY + plotH + 36}" text-anchor="middle" fill="#555">${esc(panel.unit)}</text>`,
    );
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
