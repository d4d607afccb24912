import { describe, it, expect } from 'vitest';
import { describeFailures, evaluateGates, parseGates } from '../../src/verify/gates.js';
import { REPORT_SCHEMA, reportFigures, verdictOf, type AttackFigure, type HardenReport } from '../../src/verify/report.js';

const attacks: AttackFigure[] = [
  { attack: 'pl', key: 'pl', metric: 'accuracy', model: 0.62, scratch: 0.6, advantage: 0.02, protocol: {} },
  { attack: 'knn', key: 'knn_5shot', metric: 'accuracy', model: 0.5, scratch: 0.55, advantage: -0.05, protocol: {} },
  { attack: 'slc', key: 'slc', metric: 'slc_auc', model: -0.1, protocol: {} },
  { attack: 'slc', key: 'slc_masked', metric: 'slc_auc', model: 0.3, protocol: {} },
  { attack: 'mia', key: 'mia', metric: 'advantage', model: 0.07, protocol: {} },
];
const report: HardenReport = {
  schema: REPORT_SCHEMA, harden: '0.1.0', createdAt: '2026-11-23T00:00:00Z', model: { path: 'm.onnx', sha256: 'x' }, data: {}, seed: 0,
  keep: { before: 0.98, after: 0.965, drop: 0.015, data: 'mnist:split=test' }, attacks, curves: [], verdict: 'not protected',
};

describe('release gates', () => {
  it('parses names, comparisons and thresholds', () => {
    expect(parseGates('keep_acc_drop>0.01, pl_advantage>=0.05,slc_auc>0,knn_5shot_acc<1e-1')).toEqual([
      { name: 'keep_acc_drop', op: '>', threshold: 0.01 },
      { name: 'pl_advantage', op: '>=', threshold: 0.05 },
      { name: 'slc_auc', op: '>', threshold: 0 },
      { name: 'knn_5shot_acc', op: '<', threshold: 0.1 },
    ]);
  });

  it('rejects unknown names and unreadable gates with one-line messages', () => {
    expect(() => parseGates('psychic_advantage>0')).toThrow(/unknown gate 'psychic_advantage'/);
    expect(() => parseGates('pl_advantage=0.1')).toThrow(/cannot read 'pl_advantage=0.1'/);
    expect(() => parseGates(' , ')).toThrow(/names no gate/);
  });

  it('reads the figures a report carries', () => {
    const f = reportFigures(report);
    expect(f.get('keep_acc_drop')).toBeCloseTo(0.015, 12);
    expect(f.get('pl_advantage')).toBeCloseTo(0.02, 12);
    expect(f.get('knn_5shot_advantage')).toBeCloseTo(-0.05, 12);
    expect(f.get('slc_auc')).toBe(-0.1);
    expect(f.get('slc_masked_auc')).toBe(0.3);
    expect(f.get('mia_advantage')).toBe(0.07);
  });

  it('fails a gate whose condition holds or whose figure is missing', () => {
    const results = evaluateGates(report, parseGates('keep_acc_drop>0.01,pl_advantage>0.05,slc_auc>0,probe_advantage>0'));
    expect(results.map((r) => r.failed)).toEqual([true, false, false, true]);
    expect(results[3]!.value).toBeUndefined();
    expect(describeFailures(results)).toEqual([
      'gate keep_acc_drop>0.01 failed: keep_acc_drop = 0.01500',
      'gate probe_advantage>0: not measured (add the attack that gives it)',
    ]);
  });

  it('calls a model protected only when no attacker gains more than a point and SLC-AUC ≤ 0', () => {
    expect(verdictOf(attacks)).toBe('not protected'); // pl +2 points
    expect(verdictOf(attacks.filter((a) => a.key !== 'pl' && a.key !== 'slc_masked'))).toBe('protected');
    expect(verdictOf([attacks[4]!])).toBe('no attack figures');
  });
});
