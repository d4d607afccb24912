import { describe, it, expect } from 'vitest';
import { formatPrune } from '../../src/cli/prune.js';

describe('harden prune summary', () => {
  const base = { output: '/tmp/p.onnx', method: 'ntp', sparsity: 0.9, suppression: 30, keepAccuracyBefore: 0.898 };

  it('points to --suppression 0 when NTP with suppression cost more than 2 points of keep accuracy', () => {
    const text = formatPrune({ ...base, keepAccuracy: 0.549 });
    expect(text).toContain('keep-domain test accuracy 89.80 % → 54.90 %');
    expect(text).toMatch(/try --suppression 0/);
  });

  it('says nothing more for a small drop, without suppression, or for magnitude pruning', () => {
    for (const r of [{ ...base, keepAccuracy: 0.89 }, { ...base, suppression: 0, keepAccuracy: 0.5 }, { ...base, method: 'magnitude', suppression: 0, keepAccuracy: 0.5 }]) {
      expect(formatPrune(r).split('\n')).toHaveLength(2);
    }
  });
});
