/** `harden audit` and `harden guard` (see src/audit/). */
import path from 'node:path';
import { HardenError } from '../errors.js';
import { loadModel } from '../onnx/model.js';
import { loadDataset } from '../data/index.js';
import { DEFAULT_AUDIT_SETTINGS as A, runAuditAnalysis, type AuditResult, type NamedModel } from '../audit/audit.js';
import { auditReport, readAuditReport, writeAuditReport, type AuditReport } from '../audit/report.js';
import { writeGuard } from '../audit/guard.js';
import { parseClassList } from './class-list.js';

export const AUDIT_OPTIONS = {
  source: { type: 'string', demandOption: true, describe: 'Source model M^s (ONNX)' },
  finetuned: { type: 'string', demandOption: true, describe: 'Fine-tuned model M^t (ONNX; its features must match M^s\'s classifier input)' },
  baseline: { type: 'string', describe: 'The same task trained from scratch, for comparison' },
  'source-data': { type: 'string', demandOption: true, describe: 'Source data D^s spec, labelled in M^s\'s classes (e.g. fashion-mnist:split=test,per-class=200)' },
  'target-data': { type: 'string', demandOption: true, describe: 'Target data D^t spec, labelled in M^t\'s classes, same image size' },
  k: { type: 'number', default: A.k, describe: 'v(c) counts target images whose top-k source classes include c' },
  'v-lo': { type: 'number', describe: 'F = {c : v(c) ≤ v_lo} (default: 1 % of the target images)' },
  'p-lo': { type: 'number', describe: 'L = {c ∈ F : mean p_c(M^st) > p_lo} (default: min(10/|C^s|, 0.5))' },
  'cam-layer': { type: 'string', describe: 'Node or tensor Grad-CAM reads (a spatial [N, C, H, W] activation; default: the last Conv)' },
  composites: { type: 'number', default: A.composites, describe: 'Composite images per source class' },
  'gallery-classes': { type: 'number', default: A.galleryClasses, describe: 'Most distracting source-only classes shown in the gallery' },
  'gallery-images': { type: 'number', default: A.galleryImages, describe: 'Composites per gallery class' },
  compare: { type: 'string', describe: 'An earlier audit report.json to show the change against (e.g. before --forget-classes disposal)' },
  'report-dir': { type: 'string', describe: 'Where report.json, report.html and the PNGs go (default: <finetuned>.audit)' },
  seed: { type: 'number', default: A.seed },
} as const;

export interface AuditCliOptions {
  source: string;
  finetuned: string;
  baseline?: string;
  sourceData: string;
  targetData: string;
  k: number;
  vLo?: number;
  pLo?: number;
  camLayer?: string;
  composites: number;
  galleryClasses: number;
  galleryImages: number;
  compare?: string;
  reportDir?: string;
  seed: number;
}

const named = async (file: string): Promise<NamedModel> => ({ model: await loadModel(file), name: file });

export async function runAudit(o: AuditCliOptions): Promise<{ report: AuditReport; result: AuditResult; files: { json: string; html: string; pngs: string[] } }> {
  const t0 = performance.now();
  const compared = o.compare ? await readAuditReport(o.compare) : undefined;
  const [source, finetuned] = [await named(o.source), await named(o.finetuned)];
  const baseline = o.baseline ? await named(o.baseline) : undefined;
  const sourceData = await loadDataset(o.sourceData);
  const targetData = await loadDataset(o.targetData);
  const result = await runAuditAnalysis({ source, finetuned, baseline, sourceData, targetData }, {
    k: o.k, vLo: o.vLo, pLo: o.pLo, camLayer: o.camLayer, composites: o.composites, galleryClasses: o.galleryClasses, galleryImages: o.galleryImages, seed: o.seed,
  });
  const report = auditReport(result, {
    models: { source: o.source, finetuned: o.finetuned, ...(o.baseline ? { baseline: o.baseline } : {}) },
    data: { source: o.sourceData, target: o.targetData },
    seconds: (performance.now() - t0) / 1000,
  });
  if (compared) report.compared = { file: o.compare!, F: compared.F, L: compared.L, classes: compared.classes, accuracy: compared.accuracy, meanDistraction: compared.meanDistraction };
  const files = await writeAuditReport(o.reportDir ?? `${o.finetuned}.audit`, report, result, sourceData.shape);
  return { report, result, files };
}

export function formatAudit(r: AuditReport, html: string): string {
  const f3 = (v: number | null | undefined) => (v === null || v === undefined ? '—' : v.toFixed(3));
  const p1 = (v: number) => `${(100 * v).toFixed(1)} %`;
  const lines = [
    `source-only F = {${r.F.join(', ')}} (v ≤ ${r.settings.vLo}), lingering L = {${r.L.join(', ')}} (s > ${r.settings.pLo})`,
    ...r.classes.filter((c) => c.sourceOnly).map((c) => `  class ${c.class}${c.name ? ` ${c.name}` : ''}: v ${c.prevalence}, s ${f3(c.recognition)}${c.lingering ? ' LINGERING' : ''}, distraction M^t ${f3(c.distraction?.finetuned)}${c.distraction?.baseline !== undefined ? ` / baseline ${f3(c.distraction.baseline)}` : ''}`),
    `accuracy M^t: clean ${p1(r.accuracy.finetuned.clean)}, composites ${p1(r.accuracy.finetuned.composites)}` +
      (r.accuracy.baseline ? `; baseline: clean ${p1(r.accuracy.baseline.clean)}, composites ${p1(r.accuracy.baseline.composites)}` : ''),
    `wrote ${html}`,
  ];
  return lines.join('\n');
}

export const GUARD_OPTIONS = {
  source: { type: 'string', demandOption: true, describe: 'Source model M^s (its classifier becomes the guard\'s head)' },
  finetuned: { type: 'string', demandOption: true, describe: 'Fine-tuned model M^t (the deployed model)' },
  lingering: { type: 'string', describe: 'Lingering source classes to watch, e.g. 5,7-9 (default: L of --audit)' },
  audit: { type: 'string', describe: 'An audit report.json: its L and p_lo are the defaults' },
  'p-lo': { type: 'number', describe: 'Flag when interference > p_lo (default: the audit\'s p_lo)' },
  data: { type: 'string', describe: 'Images for the onnxruntime-node/-web check (default: 8 seeded random images)' },
  output: { alias: 'o', type: 'string', demandOption: true, describe: 'Where to write the guard model' },
  overwrite: { type: 'boolean', default: false, describe: 'Replace an existing output file' },
  seed: { type: 'number', default: 0 },
} as const;

export async function runGuard(o: { source: string; finetuned: string; lingering?: string; audit?: string; pLo?: number; data?: string; output: string; overwrite: boolean; seed: number }) {
  const audit = o.audit ? await readAuditReport(o.audit) : undefined;
  const lingering = o.lingering !== undefined ? parseClassList('lingering', o.lingering) : audit?.L;
  if (!lingering) throw new HardenError('--lingering or --audit is needed (which source classes to watch)');
  if (!lingering.length) throw new HardenError(`--audit ${o.audit}: the audit found no lingering classes; nothing to guard against`);
  const pLo = o.pLo ?? audit?.settings.pLo;
  if (pLo === undefined) throw new HardenError('--p-lo or --audit is needed (the interference threshold)');
  const [source, finetuned] = [await named(o.source), await named(o.finetuned)];
  const checkData = o.data ? await loadDataset(o.data) : undefined;
  const r = await writeGuard(source, finetuned, { lingering, pLo, output: o.output, overwrite: o.overwrite, checkData, seed: o.seed });
  return { ...r, output: path.resolve(r.output) };
}
