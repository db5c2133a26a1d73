import { describe, expect, it } from 'vitest';
import { hasQuorum, quorumValue } from '../src/index.js';

// Regression: the quorum value used to take the ((n-1)>>1)-th largest value, which is a majority only for odd n.
// With 2 voters it let one voter commit alone; the simulator found it as a leader-completeness violation.
describe('quorum arithmetic', () => {
  const at = (values: Record<string, number>) => (id: string) => values[id] ?? 0;

  it('needs floor(n/2)+1 voters for every n from 1 to 6', () => {
    for (let n = 1; n <= 6; n++) {
      const voters = Array.from({ length: n }, (_, i) => `v${i}`);
      const majority = Math.floor(n / 2) + 1;
      // The first `k` voters have reached 10, the others 0: the quorum value is 10 exactly when k is a majority.
      for (let k = 0; k <= n; k++) {
        const values = Object.fromEntries(voters.map((v, i) => [v, i < k ? 10 : 0]));
        expect(quorumValue({ voters, learners: [] }, at(values))).toBe(k >= majority ? 10 : 0);
      }
    }
  });

  it('a joint configuration needs a majority of both halves (2 and 4 voters)', () => {
    const config = { voters: ['a', 'b'], learners: [], oldVoters: ['a', 'b', 'c', 'd'] };
    expect(hasQuorum(config, (id) => id === 'a' || id === 'b')).toBe(false); // 2 of 4 old voters
    expect(hasQuorum(config, (id) => id !== 'd')).toBe(true);
    expect(hasQuorum(config, (id) => id !== 'b')).toBe(false); // 1 of 2 new voters
    expect(quorumValue(config, at({ a: 5, b: 3, c: 5, d: 1 }))).toBe(3);
  });
});
