/**
 * The verification report: what `harden verify` and the `harden <model>` pipeline write as
 * report.json (schema src/verify/report.schema.json, versioned by `schema`) and render as
 * report.html. Every figure carries the protocol it was measured with.
 */

export const REPORT_SCHEMA = 'harden-report/1';

export interface ModelRef {
  path: string;
  sha256: string;
}

/** One row of the attack table: an attack's figure on the model, and its references. */
export interface AttackFigure {
  /** pl, slc, probe, knn, mia. */
  attack: string;
  /** Unique name of the row, the stem of its gate names: pl, probe, knn_5shot, slc, slc_masked, mia. */
  key: string;
  /** What is measured, e.g. 'accuracy', 'slc_auc', 'advantage (TPR − FPR)', 'accuracy@5-shot'. */
  metric: string;
  /** On the model under test. */
  model: number;
  /** On the model before hardening (the pipeline), when known. */
  undefended?: number;
  /** On the same architecture from random initialization. */
  scratch?: number;
  /** model − scratch (what an attacker gains from the weights), when a scratch reference exists. */
  advantage?: number;
  protocol: Record<string, unknown>;
}

export interface CurveSeries {
  name: string;
  points: { x: number; y: number }[];
}

export interface ReportCurve {
  title: string;
  xLabel: string;
  yLabel: string;
  xScale: 'linear' | 'log';
  series: CurveSeries[];
}

export interface GateResult {
  name: string;
  op: '>' | '<' | '>=' | '<=';
  threshold: number;
  /** The measured value; undefined when the report lacks it (the gate then fails). */
  value?: number;
  /** True when the gate's condition holds, i.e. the release must be blocked. */
  failed: boolean;
}

export interface HardenReport {
  schema: typeof REPORT_SCHEMA;
  /** Harden version. */
  harden: string;
  createdAt: string;
  model: ModelRef;
  /** The model before hardening (pipeline only). */
  original?: ModelRef;
  method?: { name: string; settings: Record<string, unknown>; seconds: number };
  data: Record<string, string | undefined>;
  seed: number;
  /** Authorized-task accuracy (fractions) before and after hardening. */
  keep?: { before?: number; after: number; drop?: number; data: string };
  attacks: AttackFigure[];
  curves: ReportCurve[];
  /** The exported model in onnxruntime-web against onnxruntime-node (see web.ts). */
  browserRuntime?: { runtime: string; images: number; maxAbsDiff: number; argmaxMismatches: number };
  gates?: { expression: string; results: GateResult[]; passed: boolean };
  /** 'protected': every attacker advantage ≤ 0.01 (SLC-AUC ≤ 0); 'not protected' otherwise. */
  verdict: 'protected' | 'not protected' | 'no attack figures';
}

/**
 * The figures gates can test, by name: keep_acc, keep_acc_drop; for slc rows <key>_auc (slc_auc,
 * slc_masked_auc); mia_advantage; for the others <key>_acc and <key>_advantage (pl_advantage,
 * probe_advantage, knn_5shot_advantage, …).
 */
export function reportFigures(r: HardenReport): Map<string, number> {
  const figures = new Map<string, number>();
  if (r.keep) figures.set('keep_acc', r.keep.after);
  if (r.keep?.drop !== undefined) figures.set('keep_acc_drop', r.keep.drop);
  for (const a of r.attacks) {
    if (a.attack === 'slc') figures.set(`${a.key}_auc`, a.model);
    else if (a.attack === 'mia') figures.set('mia_advantage', a.model);
    else {
      figures.set(`${a.key}_acc`, a.model);
      if (a.advantage !== undefined) figures.set(`${a.key}_advantage`, a.advantage);
    }
  }
  return figures;
}

/** 'protected' when no attacker gains more than a point from the weights and SLC-AUC ≤ 0. */
export function verdictOf(attacks: AttackFigure[]): HardenReport['verdict'] {
  const gains = attacks.flatMap((a) => (a.attack === 'slc' ? [a.model] : a.attack === 'mia' ? [] : a.advantage !== undefined ? [a.advantage - 0.01] : []));
  if (!gains.length) return 'no attack figures';
  return gains.every((g) => g <= 0) ? 'protected' : 'not protected';
}
