import path from 'node:path';
import cliProgress from 'cli-progress';
import { loadModel } from '../onnx/model.js';
import { loadDataset } from '../data/index.js';
import { exportModel, HARDEN_METADATA_KEY, readHardenRecord, setMetadata } from '../export/export.js';
import type { ModelProto } from '../onnx/schema.js';
import type { Dataset } from '../data/types.js';
import { evaluate, evaluateOnTfjs } from '../verify/evaluate.js';
import { disposeModel, type DisposeSettings, type DisposeStepRecord } from '../harden/dispose.js';

export interface DisposeCliOptions {
  model: string;
  retain: string;
  forget: string;
  sourceModel?: string;
  /** Target-task test data spec for the accuracy figures (default: the retain data). */
  testData?: string;
  output: string;
  settings: Omit<DisposeSettings, 'sourceModel'>;
  resume: boolean;
  checkpointDir?: string;
  json: boolean;
  overwrite: boolean;
}

/** `harden dispose`: scrub the source knowledge of a transfer-learned model, keep its target task. */
export async function runDispose(o: DisposeCliOptions): Promise<Record<string, unknown>> {
  const model = await loadModel(o.model);
  const [retain, forget] = [await loadDataset(o.retain), await loadDataset(o.forget)];
  // Loaded before disposal starts, so a bad spec fails at once rather than after the run.
  const testSet = o.testData ? await loadDataset(o.testData) : retain;
  const sourceModel = o.sourceModel ? await loadModel(o.sourceModel) : undefined;
  const checkpointDir = o.checkpointDir ?? `${o.output}.ckpt`;
  const tty = process.stderr.isTTY && !o.json;
  const bar = tty ? new cliProgress.SingleBar({ format: 'dispose |{bar}| {value}/{total} steps  KD {kd}  forget {forget}', stream: process.stderr }, cliProgress.Presets.shades_classic) : undefined;
  let last: DisposeStepRecord | undefined;
  const every = Math.max(1, Math.floor(o.settings.steps / 10));
  try {
    const { proto, history } = await disposeModel(model, o.model, { retain, forget }, { ...o.settings, sourceModel }, {
      checkpointDir,
      resume: o.resume,
      progress: {
        onStart: (steps) => bar?.start(steps, 0, { kd: '-', forget: '-' }),
        onResume: (step) => !o.json && process.stderr.write(`resuming after step ${step}\n`),
        onStep: (r) => {
          last = r;
          bar?.update(r.step, { kd: r.distillation.toFixed(4), forget: r.forget.toPrecision(4) });
          if (!tty && !o.json && r.step % every === 0) {
            process.stderr.write(`step ${r.step}: KD ${r.distillation.toFixed(4)}  forget term ${r.forget.toPrecision(4)}  loss ${r.loss.toPrecision(4)}\n`);
          }
        },
      },
    });
    bar?.stop();
    const accuracy = await accuracyFigures(model.proto, proto, testSet, o.testData ?? o.retain);
    const record = readHardenRecord(proto);
    if (record) setMetadata(proto, HARDEN_METADATA_KEY, JSON.stringify({ ...record, figures: { ...record.figures, accuracy } }));
    await exportModel({ ...model, proto }, new Map(), o.output, { overwrite: o.overwrite });
    // --forget-classes auto: the classes it chose (or 'all').
    const forgetClasses = record?.figures?.forgetClasses;
    return { output: path.resolve(o.output), method: o.settings.method, steps: history.length, ...(forgetClasses !== undefined ? { forgetClasses } : {}), last, accuracy, checkpointDir: path.resolve(checkpointDir) };
  } finally {
    bar?.stop();
  }
}

/**
 * Target-task accuracy of the model before and after disposal, under onnxruntime (where it is
 * deployed) and tfjs (where it was imported), so a release can see both agree.
 */
async function accuracyFigures(before: ModelProto, after: ModelProto, data: Dataset, spec: string) {
  return {
    data: spec,
    images: data.labels.length,
    before: { onnxruntime: (await evaluate(before, data)).accuracy, tfjs: (await evaluateOnTfjs(before, data)).accuracy },
    after: { onnxruntime: (await evaluate(after, data)).accuracy, tfjs: (await evaluateOnTfjs(after, data)).accuracy },
  };
}
