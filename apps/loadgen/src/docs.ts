/** Rewriting a marked region of a Markdown file, so a benchmark can refresh its own section and nothing else. */

/** The start and end markers of region `name` (`<!-- name:start -->` ... `<!-- name:end -->`). */
export function markers(name: string): { start: string; end: string } {
  return { start: `<!-- ${name}:start -->`, end: `<!-- ${name}:end -->` };
}

/**
 * Replaces what lies between the markers of region `name` with `body`. When the markers are absent, they are
 * appended at the end of the document under `heading` (if given), so the first run creates its section.
 */
export function replaceRegion(doc: string, name: string, body: string, heading?: string): string {
  const { start, end } = markers(name);
  const s = doc.indexOf(start);
  const e = doc.indexOf(end);
  const inner = `${start}\n${body.trim()}\n${end}`;
  if (s >= 0 && e > s) return doc.slice(0, s) + inner + doc.slice(e + end.length);
  const base = doc.endsWith('\n') || doc === '' ? doc : `${doc}\n`;
  return `${base}${heading ? `\n${heading}\n` : ''}\n${inner}\n`;
}
