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
import { loadModel, saveModel } from '../onnx/model.js';
import { loadDataset } from '../data/index.js';
import { HARDEN_METADATA_KEY, readHardenRecord, setMetadata, sha256 } from '../export/export.js';
import { applyMethod, METHODS, type MethodName } from '../harden/apply.js';
import type { DisposeSettings } from '../harden/dispose.js';
import type { PruneSettings } from '../harden/prune.js';
import type { NtlSettings } from '../harden/ntl.js';
import type { UnsirSettings } from '../harden/unsir.js';
import type { SkdSettings } from '../harden/skd.js';
import type { SophonSettings } from '../harden/sophon.js';
import { evaluate } from '../verify/evaluate.js';
import { describeFailures, evaluateGates, parseGates } from '../verify/gates.js';
import { REPORT_SCHEMA, verdictOf, type HardenReport } from '../verify/report.js';
import { writeReport } from '../verify/report-html.js';
import { checkWebRuntime } from '../verify/web.js';
import { HARDEN_VERSION } from '../version.js';
import { attackFigures, checkAttackNames, runVerify, type VerifyCliOptions } from './verify.js';

export const PIPELINE_METHODS = METHODS;
export type PipelineMethod = MethodName;

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

/** Run the pipeline; returns the report and the exit code (0, or 5 when a gate failed). */
export async function runPipeline(o: PipelineOptions): Promise<{ report: HardenReport; exitCode: number; files: Record<string, unknown> }> {
  const gates = o.failIf ? parseGates(o.failIf) : undefined;
  checkAttackNames(o.verify.attacks);
  checkAttackTestSets(o);
  const log = (line: string) => !o.json && process.stderr.write(line + '\n');
  const model = await loadModel(o.model);
  const t0 = performance.now();
  const hardened = o.method === 'none'
    ? { proto: model.proto, settings: {} }
    : await applyMethod(model, o.model, o.method, { keep: await loadDataset(o.keep), block: await loadDataset(o.block) }, { ...o, sourceModel: o.sourceModel ? await loadModel(o.sourceModel) : undefined }, log);
  const seconds = (performance.now() - t0) / 1000;

  const keep = o.keepTest ? await (async () => {
    const data = await loadDataset(o.keepTest!);
    const [before, after] = [(await evaluate(model.proto, data)).accuracy, (await evaluate(hardened.proto, data)).accuracy];
    return { before, after, drop: before - after, data: o.keepTest! };
  })() : undefined;

  // The verify options, with the block domain as the attacker's data unless given (checkAttackTestSets ran first).
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

  // Write the hardened model first (verification attacks the file), then add the report summary.
  const record = readHardenRecord(hardened.proto) ?? { version: HARDEN_VERSION, operation: o.method };
  record.sourceSha256 = sha256(readFileSync(o.model));
  setMetadata(hardened.proto, HARDEN_METADATA_KEY, JSON.stringify(record));
  await saveModel(hardened.proto, o.output, { overwrite: o.overwrite, inputPath: o.model, sourceBaseDir: model.baseDir });
  const browserRuntime = await checkWebRuntime(readFileSync(o.output), await loadDataset(attackTest ?? verify.plTest ?? verify.slcTest ?? o.keep));
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

/** Before any hardening: every requested attack has a test set (its own flag, or --block-test / --test-data). */
function checkAttackTestSets(o: PipelineOptions): void {
  const shared = o.verify.testData ?? o.blockTest;
  const own: Record<string, [string | undefined, string]> = {
    pl: [o.verify.plTest, '--pl-test'], slc: [o.verify.slcTest, '--slc-test'], mia: [o.verify.nonMembers, '--non-members'],
    probe: [undefined, '--test-data'], knn: [undefined, '--test-data'],
  };
  for (const attack of o.verify.attacks) {
    const [set, flag] = own[attack] ?? [undefined, '--test-data'];
    if (!set && !shared) throw new HardenError(`the ${attack} attack needs a test set of the blocked domain: give --block-test (or ${flag})`);
  }
}
