/**
 * A rolling line chart on a canvas (our own code: no charting library, so nothing to fetch and nothing to bundle
 * but this). Draws the last `windowMs` of (time, value) samples, newest on the right.
 */
export class RollingChart {
  private readonly ctx: CanvasRenderingContext2D | null;
  private samples: { t: number; v: number }[] = [];

  /**
   * @param canvas - where to draw (its CSS size is used; the backing store follows devicePixelRatio).
   * @param windowMs - how much history is shown.
   * @param unit - label of the y axis.
   */
  constructor(
    readonly canvas: HTMLCanvasElement,
    private readonly windowMs = 60_000,
    private readonly unit = 'commits/s',
  ) {
    this.ctx = canvas.getContext('2d');
  }

  /** Adds a sample taken at `t` (ms, monotonic). */
  push(t: number, v: number): void {
    this.samples.push({ t, v });
    const cut = t - this.windowMs - 1000;
    while (this.samples.length > 0 && this.samples[0].t < cut) this.samples.shift();
  }

  /** The newest value, or 0. */
  get latest(): number {
    return this.samples.at(-1)?.v ?? 0;
  }

  /** Redraws at time `now`. */
  draw(now: number): void {
    const ctx = this.ctx;
    if (ctx === null) return;
    const dpr = window.devicePixelRatio || 1;
    const w = this.canvas.clientWidth || 600;
    const hgt = this.canvas.clientHeight || 160;
    if (this.canvas.width !== Math.round(w * dpr) || this.canvas.height !== Math.round(hgt * dpr)) {
      this.canvas.width = Math.round(w * dpr);
      this.canvas.height = Math.round(hgt * dpr);
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, hgt);
    const left = 48;
    const bottom = hgt - 18;
    const top = 8;
    const right = w - 8;
    const max = niceCeil(Math.max(1, ...this.samples.map((s) => s.v)));
    ctx.font = '11px system-ui, sans-serif';
    ctx.fillStyle = '#8a93a6';
    ctx.strokeStyle = '#2a3142';
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = bottom - ((bottom - top) * i) / 4;
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(right, y);
      ctx.stroke();
      ctx.fillText(formatNumber((max * i) / 4), 4, y + 4);
    }
    ctx.fillText(`${this.unit}, last ${Math.round(this.windowMs / 1000)} s`, left + 4, hgt - 4);
    const x = (t: number) => right - ((now - t) / this.windowMs) * (right - left);
    const y = (v: number) => bottom - (v / max) * (bottom - top);
    const pts = this.samples.filter((s) => now - s.t <= this.windowMs);
    if (pts.length < 2) return;
    ctx.strokeStyle = '#4fc3f7';
    ctx.lineWidth = 2;
    ctx.beginPath();
    for (let i = 0; i < pts.length; i++) {
      if (i === 0) ctx.moveTo(x(pts[i].t), y(pts[i].v));
      else ctx.lineTo(x(pts[i].t), y(pts[i].v));
    }
    ctx.stroke();
    ctx.lineTo(x(pts[pts.length - 1].t), bottom);
    ctx.lineTo(x(pts[0].t), bottom);
    ctx.closePath();
    ctx.fillStyle = 'rgba(79, 195, 247, 0.12)';
    ctx.fill();
  }
}

/** The smallest "round" number (1, 2, 5 × 10^k) at or above `v`. */
export function niceCeil(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function formatNumber(v: number): string {
  if (v >= 10_000) return `${Math.round(v / 1000)}k`;
  if (v >= 1000) return `${(v / 1000).toFixed(1)}k`;
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}
