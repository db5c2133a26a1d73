/** Progress display: a redrawn bar on a terminal, plain periodic lines otherwise (logs, CI, pipes). */

/** How to show progress: `auto` picks `bar` on a TTY and `lines` otherwise. */
export type ProgressMode = 'auto' | 'bar' | 'lines' | 'off';

/** What a progress display reads on each tick. */
export interface ProgressSource {
  /** Requests the phase will send: the 100 % mark (0 shows 100 %). */
  readonly total: number;
  /** Requests completed so far, successfully or not; read on every redraw to compute the percentage and rate. */
  done(): number;
  /** Requests failed so far (errors and timeouts), shown as `errors=N`. */
  errors(): number;
}

/** Starts a progress display on `stream`; returns a function that stops it (and ends the bar's line). */
export function startProgress(
  label: string,
  source: ProgressSource,
  mode: ProgressMode = 'auto',
  stream: NodeJS.WriteStream = process.stderr,
): () => void {
  const resolved = mode === 'auto' ? (stream.isTTY ? 'bar' : 'lines') : mode;
  if (resolved === 'off') return () => {};
  const started = performance.now();
  let lastDone = 0;
  let lastAt = started;
  const render = (final: boolean) => {
    const now = performance.now();
    const done = source.done();
    const rate = final ? (done / (now - started)) * 1000 : ((done - lastDone) / Math.max(1, now - lastAt)) * 1000;
    lastDone = done;
    lastAt = now;
    const pct = source.total ? Math.min(100, (done / source.total) * 100) : 100;
    const stats = `${done}/${source.total} ${pct.toFixed(0)}% ${rate.toFixed(0)} req/s errors=${source.errors()}`;
    if (resolved === 'bar') {
      const width = 30;
      const fill = Math.round((pct / 100) * width);
      stream.write(`\r${label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${stats}\x1b[K${final ? '\n' : ''}`);
    } else {
      stream.write(`${label}: ${stats}\n`);
    }
  };
  const timer = setInterval(() => render(false), resolved === 'bar' ? 200 : 2000);
  timer.unref();
  return () => {
    clearInterval(timer);
    render(true);
  };
}
