import path from 'node:path';
import { readFileSync } from 'node:fs';
import cliProgress from 'cli-progress';
import { loadModel, saveModel } from '../onnx/model.js';
import { loadDataset } from '../data/index.js';
import { HARDEN_METADATA_KEY, readHardenRecord, setMetadata, sha256 } from '../export/export.js';
import { setSparsityMetadata, sparsityReport, toSparseInitializers } from '../export/sparsity.js';
import { pruneModel, type PruneSettings, type PruneStepRecord } from '../harden/prune.js';
import { evaluate } from '../verify/evaluate.js';

export interface PruneCliOptions {
  model: string;
  keep: string;
  block?: string;
  keepTest?: string;
  output: string;
  settings: PruneSettings;
  sparseFormat: 'dense' | 'coo';
  resume: boolean;
  checkpointDir?: string;
  json: boolean;
  overwrite: boolean;
}

/**
 * `harden prune`: non-transferable pruning (or plain magnitude pruning), written with exact zeros,
 * its sparsity in metadata_props ('harden.sparsity'), optionally as COO sparse initializers.
 */
export async function runPrune(o: PruneCliOptions): Promise<Record<string, unknown>> {
  const model = await loadModel(o.model);
  const keep = await loadDataset(o.keep);
  const block = o.block ? await loadDataset(o.block) : undefined;
  const keepTest = o.keepTest ? await loadDataset(o.keepTest) : undefined;
  const checkpointDir = o.checkpointDir ?? `${o.output}.ckpt`;
  const tty = process.stderr.isTTY && !o.json;
  const bar = tty ? new cliProgress.SingleBar({ format: 'prune |{bar}| {value}/{total} steps  {phase}  keep CE {keep}', stream: process.stderr }, cliProgress.Presets.shades_classic) : undefined;
  let last: PruneStepRecord | undefined;
  const log = (line: string) => !tty && !o.json && process.stderr.write(line + '\n');
  try {
    const result = await pruneModel(model, o.model, { keep, block }, o.settings, {
      checkpointDir,
      resume: o.resume,
      progress: {
        onStart: (total) => bar?.start(total, 0, { phase: '-', keep: '-' }),
        onResume: (step) => !o.json && process.stderr.write(`resuming after step ${step}\n`),
        onIteration: (it) => log(`ADMM iteration ${it.iteration}: ‖W − Z‖/‖W‖ = ${it.residual.toFixed(4)}`),
        onStep: (r) => {
          last = r;
          bar?.update(r.step, { phase: r.phase, keep: r.keep.toFixed(4) });
          if (r.step % 100 === 0) {
            log(`step ${r.step} (${r.phase}): keep CE ${r.keep.toFixed(4)}` + (r.fisher !== undefined ? `  block CE ${r.block!.toFixed(3)}  S_B/S_W ${r.fisher.toPrecision(3)}` : '') + (r.suppressed !== undefined ? `  suppression ${r.suppressed.toPrecision(3)}` : ''));
          }
        },
      },
    });
    bar?.stop();
    let proto = result.proto;
    const record = readHardenRecord(proto)!;
    record.sourceSha256 = sha256(readFileSync(o.model));
    record.settings = { ...record.settings, keep: o.keep, block: o.block, sparseFormat: o.sparseFormat };
    if (keepTest) {
      const before = await evaluate(model.proto, keepTest);
      const after = await evaluate(proto, keepTest);
      record.figures = { ...record.figures, keepTest: o.keepTest, keepAccuracyBefore: before.accuracy, keepAccuracy: after.accuracy };
    }
    setMetadata(proto, HARDEN_METADATA_KEY, JSON.stringify(record));
    const sparsity = sparsityReport(proto);
    setSparsityMetadata(proto, sparsity);
    if (o.sparseFormat === 'coo') proto = toSparseInitializers(proto, { names: [...result.masks.keys()], minSparsity: 0 }).proto;
    await saveModel(proto, o.output, { overwrite: o.overwrite, inputPath: o.model, sourceBaseDir: model.baseDir });
    return {
      output: path.resolve(o.output),
      method: o.settings.method,
      suppression: o.settings.method === 'ntp' ? o.settings.suppression : 0,
      sparsity: sparsity.global,
      prunedTensors: Object.fromEntries([...result.masks.keys()].map((n) => [n, sparsity.perTensor[n]?.sparsity])),
      admmIterations: result.iterations,
      last,
      ...(record.figures && 'keepAccuracy' in record.figures ? { keepAccuracyBefore: record.figures.keepAccuracyBefore, keepAccuracy: record.figures.keepAccuracy } : {}),
      checkpointDir: path.resolve(checkpointDir),
    };
  } finally {
    bar?.stop();
  }
}

export function formatPrune(r: Record<string, unknown>): string {
  const pct = (v: unknown) => `${(100 * (v as number)).toFixed(2)} %`;
  const lines = [`wrote ${r.output} (${r.method}, sparsity ${pct(r.sparsity)} of the pruned tensors)`];
  if (r.keepAccuracy !== undefined) {
    lines.push(`keep-domain test accuracy ${pct(r.keepAccuracyBefore)} → ${pct(r.keepAccuracy)}`);
    const drop = (r.keepAccuracyBefore as number) - (r.keepAccuracy as number);
    if (r.method === 'ntp' && (r.suppression as number) > 0 && drop > 0.02) {
      lines.push(`note: the suppression silences block-domain features; when --block holds classes of the keep domain rather than another domain, it costs keep accuracy too: try --suppression 0`);
    }
  }
  return lines.join('\n');
}
