/** Helpers without test-framework imports, shared with the crash test's child process. */

/** A deterministic payload for entry `index` written in `term` (tests recognise any stray byte). */
export function payload(index: number, term: number, size = 8 + (index % 13)): Uint8Array {
  const b = new Uint8Array(size);
  for (let k = 0; k < size; k++) b[k] = (index * 7 + term * 13 + k * 31) & 0xff;
  return b;
}
