import { HARDEN_VERSION } from '../version.js';
import path from 'node:path';
import cliProgress from 'cli-progress';
import { HardenError } from '../errors.js';
import { loadModel, type OnnxModel } from '../onnx/model.js';
import { loadDataset } from '../data/index.js';
import { buildArchitecture, isArchName, ARCHITECTURES } from '../models/index.js';
import { exportModel, sha256 } from '../export/export.js';
import { findClassifierHead } from '../import/head.js';
import { toNumber } from '../onnx/schema.js';
import { withNewHead } from '../train/head.js';
import { trainModel, type EpochRecord, type TrainProgress, type TrainSettings } from '../train/trainer.js';
import { readFileSync } from 'node:fs';

export interface TrainCliOptions {
  data: string;
  testData?: string;
  arch?: string;
  model?: string;
  classes?: number;
  output: string;
  settings: TrainSettings;
  resume: boolean;
  checkpointDir?: string;
  json: boolean;
  overwrite: boolean;
  /** Replace the classifier even when the class count is unchanged (transfer to another task). */
  newHead: boolean;
}

function modelClasses(model: OnnxModel): number | undefined {
  const dim = model.proto.graph?.output[0].type?.tensor_type?.shape?.dim?.at(-1);
  return dim?.value === 'dim_value' ? toNumber(dim.dim_value) : undefined;
}

/** Progress: a bar on a terminal, one plain line per epoch otherwise (and nothing with --json). */
function progressReporter(json: boolean): TrainProgress & { stop(): void } {
  const tty = process.stderr.isTTY && !json;
  const bar = tty ? new cliProgress.SingleBar({ format: 'epoch {epoch} |{bar}| {value}/{total} batches  loss {loss}', stream: process.stderr }, cliProgress.Presets.shades_classic) : undefined;
  const line = (r: EpochRecord) =>
    `epoch ${r.epoch}: lr ${r.learningRate.toPrecision(3)}  train loss ${r.trainLoss.toFixed(4)}` +
    (r.test ? `  test acc ${(100 * r.test.accuracy).toFixed(2)} %  test loss ${r.test.loss.toFixed(4)}` : '') +
    `  (${r.seconds.toFixed(1)} s)`;
  return {
    onResume: (epoch) => !json && process.stderr.write(`resuming after epoch ${epoch}\n`),
    onEpochStart: (epoch, total) => bar?.start(total, 0, { epoch: epoch + 1, loss: '-' }),
    onBatch: (_e, batch, loss) => bar?.update(batch, { loss: loss.toFixed(4) }),
    onEpochEnd: (r) => {
      bar?.stop();
      if (!json) process.stderr.write(line(r) + '\n');
    },
    stop: () => bar?.stop(),
  };
}

export async function runTrain(o: TrainCliOptions): Promise<Record<string, unknown>> {
  if ((o.arch === undefined) === (o.model === undefined)) throw new HardenError('give exactly one of --arch (train from scratch) or --model (fine-tune an ONNX model)');
  const trainSet = await loadDataset(o.data);
  const testSet = o.testData ? await loadDataset(o.testData) : undefined;
  const classes = o.classes ?? trainSet.classes;
  let model: OnnxModel;
  let source: string;
  if (o.arch !== undefined) {
    if (!isArchName(o.arch)) throw new HardenError(`--arch '${o.arch}' is unknown; choose one of ${ARCHITECTURES.join(', ')}`);
    const proto = buildArchitecture(o.arch, { classes, inputShape: trainSet.shape, seed: o.settings.seed });
    source = `${o.arch} (new)`;
    model = { proto };
  } else {
    model = await loadModel(o.model!);
    source = o.model!;
    if (!findClassifierHead(model.proto)) throw new HardenError(`${source}: no final Gemm/MatMul classifier found; Harden cannot fine-tune it`);
    if (o.newHead || modelClasses(model) !== classes) model = { ...model, proto: withNewHead(model.proto, classes, o.settings.seed, source) };
  }
  const checkpointDir = o.checkpointDir ?? `${o.output}.ckpt`;
  const progress = progressReporter(o.json);
  try {
    const { proto, history } = await trainModel(model, source, trainSet, testSet, o.settings, { checkpointDir, resume: o.resume, progress });
    const last = history.at(-1);
    const record = {
      version: HARDEN_VERSION,
      operation: 'train',
      sourceSha256: o.model ? sha256(readFileSync(o.model)) : undefined,
      settings: { ...o.settings, arch: o.arch, data: o.data, testData: o.testData, classes },
      figures: last?.test ? { testAccuracy: last.test.accuracy, testLoss: last.test.loss } : undefined,
    };
    await exportModel({ ...model, proto }, new Map(), o.output, { record, overwrite: o.overwrite });
    return { output: path.resolve(o.output), checkpointDir: path.resolve(checkpointDir), classes, trainImages: trainSet.labels.length, testImages: testSet?.labels.length, history };
  } finally {
    progress.stop();
  }
}
