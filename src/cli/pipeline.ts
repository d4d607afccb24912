/**
 * `harden <model.onnx> --method … --keep … --block … -o out.onnx`: harden → export → verify in one
 * go. The hardened model and the original are attacked with the same protocol (the original's
 * figures are the report's "undefended" column), the report goes to report.json / report.html,
 * its summary into the output model's metadata_props ('harden.report'), and `--fail-if` gates
 * decide the exit code.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ExitCode, HardenError } from '../errors.js';
import { loadModel, saveModel, type OnnxModel } from '../onnx/model.js';
import type { ModelProto } from '../onnx/schema.js';
import { loadDataset } from '../data/index.js';
import { HARDEN_METADATA_KEY, readHardenRecord, setMetadata, sha256 } from '../export/export.js';
import { setSparsityMetadata, sparsityReport } from '../export/sparsity.js';
import { disposeModel, DEFAULT_DISPOSE_SETTINGS, type DisposeMethod, type DisposeSettings } from '../harden/dispose.js';
import { pruneModel, DEFAULT_PRUNE_SETTINGS, type PruneSettings } from '../harden/prune.js';
import { ntlModel, DEFAULT_NTL_SETTINGS, type NtlSettings } from '../harden/ntl.js';
import { unsirModel, DEFAULT_UNSIR_SETTINGS, type UnsirSettings } from '../harden/unsir.js';
import { skdModel, DEFAULT_SKD_SETTINGS, type SkdSettings } from '../harden/skd.js';
import { sophonModel, DEFAULT_SOPHON_SETTINGS, type SophonSettings } from '../harden/sophon.js';
import { splitDataset } from '../verify/split.js';
import { evaluate } from '../verify/evaluate.js';
import { describeFailures, evaluateGates, parseGates } from '../verify/gates.js';
import { REPORT_SCHEMA, verdictOf, type HardenReport } from '../verify/report.js';
import { writeReport } from '../verify/report-html.js';
import { checkWebRuntime } from '../verify/web.js';
import { HARDEN_VERSION } from '../version.js';
import { attackFigures, checkAttackNames, runVerify, type VerifyCliOptions } from './verify.js';

export const PIPELINE_METHODS = ['gc', 'ngc', 'rtf', 'utf', 'ntp', 'magnitude', 'ntl', 'sophon', 'skd', 'unsir', 'none'] as const;
export type PipelineMethod = (typeof PIPELINE_METHODS)[number];

export interface PipelineOptions {
  model: string;
  method: PipelineMethod;
  keep: string;
  block: string;
  keepTest?: string;
  blockTest?: string;
  sourceModel?: string;
  output: string;
  overwrite: boolean;
  seed: number;
  /** Method settings beyond the defaults (config file `dispose` / `prune` sections, flags). */
  dispose: Partial<DisposeSettings>;
  prune: Partial<PruneSettings>;
  ntl: Partial<NtlSettings>;
  sophon: Partial<SophonSettings>;
  skd: Partial<SkdSettings>;
  unsir: Partial<UnsirSettings>;
  /** Attack options as `harden verify` takes them; data specs default to the block data. */
  verify: Omit<VerifyCliOptions, 'model' | 'json'>;
  reportDir?: string;
  failIf?: string;
  json: boolean;
}

async function harden(model: OnnxModel, o: PipelineOptions, log: (line: string) => void): Promise<{ proto: ModelProto; settings: Record<string, unknown> }> {
  if (o.method === 'none') return { proto: model.proto, settings: {} };
  const keep = await loadDataset(o.keep);
  const block = await loadDataset(o.block);
  if (o.method === 'ntp' || o.method === 'magnitude') {
    const settings: PruneSettings = { ...DEFAULT_PRUNE_SETTINGS, ...o.prune, method: o.method, seed: o.seed };
    const r = await pruneModel(model, o.model, { keep, block }, settings, { progress: { onStart: () => log(`prune (${o.method}, sparsity ${settings.sparsity})`), onIteration: (it) => log(`  ADMM iteration ${it.iteration}: ‖W − Z‖/‖W‖ = ${it.residual.toFixed(4)}`) } });
    setSparsityMetadata(r.proto, sparsityReport(r.proto));
    return { proto: r.proto, settings: { ...settings } };
  }
  if (o.method === 'ntl') {
    const settings: NtlSettings = { ...DEFAULT_NTL_SETTINGS, ...o.ntl, seed: o.seed };
    const r = await ntlModel(model, o.model, { keep, block }, settings, {
      progress: { onStart: () => log(`ntl (${settings.steps} steps)`), onStep: (s) => s.step % Math.max(1, Math.floor(settings.steps / 5)) === 0 && log(`  step ${s.step}: keep CE ${s.keep.toFixed(4)}, block CE ${s.block.toFixed(3)}, MMD ${s.mmd.toFixed(4)}`) },
    });
    return { proto: r.proto, settings: { ...settings } };
  }
  if (o.method === 'unsir') {
    // The classes to forget are those of the block data, in the model's own label space (relabel=false).
    const forgetClasses = [...new Set(block.labels)].sort((a, b) => a - b);
    const settings: UnsirSettings = { ...DEFAULT_UNSIR_SETTINGS, ...o.unsir, seed: o.seed };
    log(`unsir (forget classes ${forgetClasses.join(', ')})`);
    const r = await unsirModel(model, o.model, { keep, forgetClasses }, settings);
    return { proto: r.proto, settings: { ...settings, forgetClasses } };
  }
  if (o.method === 'skd') {
    const settings: SkdSettings = { ...DEFAULT_SKD_SETTINGS, ...o.skd, seed: o.seed };
    log(`skd (${settings.steps} distillation + ${settings.headSteps} head steps)`);
    const r = await skdModel(model, o.model, { keep, block }, settings);
    return { proto: r.proto, settings: { ...settings } };
  }
  if (o.method === 'sophon') {
    const settings: SophonSettings = { ...DEFAULT_SOPHON_SETTINGS, ...o.sophon, seed: o.seed };
    // The keep-accuracy floor is checked on a held-out tenth of the keep data, not on test data.
    const { train, val } = splitDataset(keep, 0.1, o.seed);
    log(`sophon (${settings.outerSteps} outer × ${settings.innerSteps} inner steps)`);
    const r = await sophonModel(model, o.model, { keep: train, block, keepCheck: val }, settings, {
      onStep: (s) => s.keepAccuracy !== undefined && log(`  step ${s.step}: retention CE ${s.retention.toFixed(4)}, suppression ${s.suppression.toFixed(4)}, keep accuracy ${(100 * s.keepAccuracy).toFixed(2)} %`),
    });
    if (r.rolledBack) log(`  keep accuracy fell below ${settings.minKeepAccuracy}: rolled back to the last weights above it`);
    return { proto: r.proto, settings: { ...settings } };
  }
  const sourceModel = o.sourceModel ? await loadModel(o.sourceModel) : undefined;
  const settings: DisposeSettings = { ...DEFAULT_DISPOSE_SETTINGS, ...o.dispose, method: o.method as DisposeMethod, seed: o.seed, sourceModel };
  const r = await disposeModel(model, o.model, { retain: keep, forget: block }, settings, {
    progress: { onStart: () => log(`dispose (${o.method}, ${settings.steps} steps)`), onStep: (s) => s.step % Math.max(1, Math.floor(settings.steps / 5)) === 0 && log(`  step ${s.step}: KD ${s.distillation.toFixed(4)}, forget term ${s.forget.toPrecision(4)}`) },
  });
  const { sourceModel: _omit, ...plain } = settings;
  return { proto: r.proto, settings: { ...plain, sourceModel: o.sourceModel } };
}

/** Run the pipeline; returns the report and the exit code (0, or 5 when a gate failed). */
export async function runPipeline(o: PipelineOptions): Promise<{ report: HardenReport; exitCode: number; files: Record<string, unknown> }> {
  const gates = o.failIf ? parseGates(o.failIf) : undefined;
  checkAttackNames(o.verify.attacks);
  const log = (line: string) => !o.json && process.stderr.write(line + '\n');
  const model = await loadModel(o.model);
  const t0 = performance.now();
  const hardened = await harden(model, o, log);
  const seconds = (performance.now() - t0) / 1000;

  const keep = o.keepTest ? await (async () => {
    const data = await loadDataset(o.keepTest!);
    const [before, after] = [(await evaluate(model.proto, data)).accuracy, (await evaluate(hardened.proto, data)).accuracy];
    return { before, after, drop: before - after, data: o.keepTest! };
  })() : undefined;

  // The verify options, with the block domain as the attacker's data unless given.
  const attackData = o.verify.data ?? o.block;
  const attackTest = o.verify.testData ?? o.blockTest;
  const verify: VerifyCliOptions = {
    ...o.verify,
    model: o.output,
    json: o.json,
    data: attackData,
    testData: attackTest,
    plData: o.verify.plData ?? attackData,
    plTest: o.verify.plTest ?? attackTest,
    slcData: o.verify.slcData ?? o.block,
    slcTest: o.verify.slcTest ?? attackTest,
    members: o.verify.members ?? o.block,
    nonMembers: o.verify.nonMembers ?? attackTest,
    seed: o.seed,
  };
  if (!attackTest) throw new HardenError('the attacks need a test set of the blocked domain: give --block-test');

  // Write the hardened model first (verification attacks the file), then add the report summary.
  const record = readHardenRecord(hardened.proto) ?? { version: HARDEN_VERSION, operation: o.method };
  record.sourceSha256 = sha256(readFileSync(o.model));
  setMetadata(hardened.proto, HARDEN_METADATA_KEY, JSON.stringify(record));
  await saveModel(hardened.proto, o.output, { overwrite: o.overwrite, inputPath: o.model, sourceBaseDir: model.baseDir });
  const browserRuntime = await checkWebRuntime(readFileSync(o.output), await loadDataset(attackTest));
  log(`onnxruntime-web: ${browserRuntime.images} images, max |web − node| ${browserRuntime.maxAbsDiff.toExponential(2)}`);
  log(`verify ${o.output}: ${o.verify.attacks.join(', ')}`);
  const after = attackFigures(await runVerify(verify));
  log(`verify ${o.model} (undefended): ${o.verify.attacks.join(', ')}`);
  const before = attackFigures(await runVerify({ ...verify, model: o.model, plot: undefined }));
  for (const a of after.attacks) a.undefended = before.attacks.find((b) => b.key === a.key)?.model;
  for (const c of before.curves) for (const s of c.series) if (s.name.startsWith('model')) after.curves.find((x) => x.title === c.title)?.series.push({ ...s, name: s.name.replace('model', 'undefended') });

  const report: HardenReport = {
    schema: REPORT_SCHEMA,
    harden: HARDEN_VERSION,
    createdAt: new Date().toISOString(),
    model: { path: path.resolve(o.output), sha256: sha256(readFileSync(o.output)) },
    original: { path: path.resolve(o.model), sha256: record.sourceSha256 },
    method: { name: o.method, settings: hardened.settings, seconds },
    data: { keep: o.keep, block: o.block, keepTest: o.keepTest, blockTest: o.blockTest, attackData, attackTest },
    seed: o.seed,
    ...(keep ? { keep } : {}),
    attacks: after.attacks,
    curves: after.curves,
    browserRuntime,
    verdict: verdictOf(after.attacks),
  };
  let exitCode = 0;
  if (gates) {
    const results = evaluateGates(report, gates);
    report.gates = { expression: o.failIf!, results, passed: results.every((r) => !r.failed) };
    for (const line of describeFailures(results)) process.stderr.write(`harden: ${line}\n`);
    if (!report.gates.passed) exitCode = ExitCode.GateFailed;
  }
  // The report summary rides along in the released model.
  setMetadata(hardened.proto, 'harden.report', JSON.stringify(reportSummary(report)));
  await saveModel(hardened.proto, o.output, { overwrite: true, inputPath: o.model, sourceBaseDir: model.baseDir });
  const reportDir = o.reportDir ?? `${o.output}.report`;
  const files = await writeReport(reportDir, report);
  return { report, exitCode, files };
}

/** What the output model carries: verdict, keep accuracy, each attack's headline figure, gates. */
export function reportSummary(r: HardenReport): Record<string, unknown> {
  return {
    schema: r.schema,
    verdict: r.verdict,
    method: r.method?.name,
    keep: r.keep && { before: r.keep.before, after: r.keep.after },
    attacks: Object.fromEntries(r.attacks.map((a) => [a.key, { metric: a.metric, model: a.model, undefended: a.undefended, scratch: a.scratch, advantage: a.advantage }])),
    gates: r.gates && { expression: r.gates.expression, passed: r.gates.passed },
  };
}

/** The one-screen console summary. */
export function formatSummary(r: HardenReport): string {
  const pct = (v?: number) => (v === undefined ? '–' : `${(100 * v).toFixed(2)} %`);
  const val = (metric: string, v?: number) => (v === undefined ? '–' : metric === 'accuracy' || metric === 'advantage' ? pct(v) : v.toFixed(4));
  const rows = r.attacks.map((a) => [a.key, a.metric, val(a.metric, a.model), val(a.metric, a.undefended), val(a.metric, a.scratch), a.advantage === undefined ? '–' : `${a.advantage >= 0 ? '+' : ''}${(100 * a.advantage).toFixed(2)}`]);
  const header = ['attack', 'metric', 'model', 'undefended', 'scratch', 'gain (pts)'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  return [
    `model     ${r.model.path}`,
    `verdict   ${r.verdict}` + (r.gates ? `; gates ${r.gates.passed ? 'passed' : 'FAILED'} (${r.gates.expression})` : ''),
    ...(r.keep ? [`keep      ${pct(r.keep.before)} → ${pct(r.keep.after)} on ${r.keep.data}`] : []),
    ...(r.browserRuntime ? [`browser   onnxruntime-web agrees with onnxruntime-node (max |Δ| ${r.browserRuntime.maxAbsDiff.toExponential(1)}, ${r.browserRuntime.argmaxMismatches} of ${r.browserRuntime.images} predictions differ)`] : []),
    '',
    line(header),
    ...rows.map(line),
  ].join('\n');
}
