/**
 * Release gates: `--fail-if "keep_acc_drop>0.01,pl_advantage>0.05,slc_auc>0"`. Each gate names a
 * report figure (reportFigures in report.ts), a comparison and a threshold; a gate *fails* — the
 * release is blocked — when its condition holds, or when the report lacks the figure.
 */
import { HardenError } from '../errors.js';
import { reportFigures, type GateResult, type HardenReport } from './report.js';

export interface Gate {
  name: string;
  op: GateResult['op'];
  threshold: number;
}

const FIGURE = /^(keep_acc|keep_acc_drop|slc_auc|slc_masked_auc|mia_advantage|(pl|probe|knn_(1|5|10)shot)_(acc|advantage))$/;

/** Gate names a report can carry (for messages). */
export const GATE_NAMES = 'keep_acc, keep_acc_drop, pl_advantage, pl_acc, probe_advantage, probe_acc, knn_{1,5,10}shot_advantage/_acc, slc_auc, slc_masked_auc, mia_advantage';

export function parseGates(expression: string): Gate[] {
  const gates: Gate[] = [];
  for (const part of expression.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^([a-z0-9_]+)\s*(>=|<=|>|<)\s*(-?[0-9.]+(?:e-?[0-9]+)?)$/i.exec(part);
    if (!m) throw new HardenError(`--fail-if: cannot read '${part}'; write name>value, e.g. pl_advantage>0.05`);
    const [, name, op, value] = m;
    if (!FIGURE.test(name!)) throw new HardenError(`--fail-if: unknown gate '${name}'; known: ${GATE_NAMES}`);
    const threshold = Number(value);
    if (!Number.isFinite(threshold)) throw new HardenError(`--fail-if: '${value}' in '${part}' is not a number`);
    gates.push({ name: name!, op: op as Gate['op'], threshold });
  }
  if (!gates.length) throw new HardenError('--fail-if names no gate');
  return gates;
}

const holds = (value: number, op: Gate['op'], threshold: number): boolean =>
  op === '>' ? value > threshold : op === '<' ? value < threshold : op === '>=' ? value >= threshold : value <= threshold;

export function evaluateGates(report: HardenReport, gates: Gate[]): GateResult[] {
  const figures = reportFigures(report);
  return gates.map(({ name, op, threshold }) => {
    const value = figures.get(name);
    return { name, op, threshold, value, failed: value === undefined || holds(value, op, threshold) };
  });
}

/** One line per failed gate, for the console. */
export function describeFailures(results: GateResult[]): string[] {
  return results.filter((r) => r.failed).map((r) => (r.value === undefined ? `gate ${r.name}${r.op}${r.threshold}: not measured (add the attack that gives it)` : `gate ${r.name}${r.op}${r.threshold} failed: ${r.name} = ${r.value.toPrecision(4)}`));
}
