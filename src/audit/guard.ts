/**
 * `harden guard`: the fine-tuned model plus a runtime check for lingering source memories, in one
 * ONNX graph (stitch.ts): its original outputs, `interference` = max_{c ∈ L} p_c(M^{st}(x)) and
 * `interference_flag` = interference > p_lo. The written file is run in onnxruntime-node and
 * onnxruntime-web (wasm) on the same batch, and every output must agree.
 */
import path from 'node:path';
import * as ortWeb from 'onnxruntime-web';
import { HARDEN_VERSION } from '../version.js';
import { HardenError } from '../errors.js';
import type { Dataset } from '../data/types.js';
import { batches } from '../data/loader.js';
import { encodeModel, saveModel } from '../onnx/model.js';
import type { HostTensor } from '../onnx/tensor.js';
import { HARDEN_METADATA_KEY, setMetadata } from '../export/export.js';
import { createSession, runSession } from '../verify/ort.js';
import { Random } from '../util/random.js';
import type { NamedModel } from './audit.js';
import { INTERFERENCE_FLAG, stitchSourceHead } from './stitch.js';

export interface GuardOptions {
  lingering: number[];
  pLo: number;
  output: string;
  overwrite?: boolean;
  /** Images for the runtime check (default: 8 seeded uniform [0, 1) images of the input's size). */
  checkData?: Dataset;
  seed?: number;
}

export interface RuntimeAgreement {
  images: number;
  outputs: string[];
  /** max |web − node| over every float output element. */
  maxAbsDiff: number;
  /** Images whose interference flag differs between the runtimes. */
  flagMismatches: number;
  /** Images flagged (onnxruntime-node). */
  flagged: number;
}

/** Runs one batch through onnxruntime-node and -web and compares every output. */
export async function compareRuntimes(bytes: Uint8Array, x: HostTensor): Promise<RuntimeAgreement> {
  const node = await createSession(bytes);
  let want: Map<string, HostTensor>;
  try {
    want = await runSession(node, { [node.inputNames[0]!]: x });
  } finally {
    await node.release();
  }
  ortWeb.env.wasm.numThreads = 1;
  const got = new Map<string, Float32Array>();
  try {
    const web = await ortWeb.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
    const out = await web.run({ [web.inputNames[0]!]: new ortWeb.Tensor('float32', x.data as Float32Array, x.shape) });
    for (const name of web.outputNames) got.set(name, Float32Array.from(out[name]!.data as ArrayLike<number>, Number));
    await web.release();
  } catch (e) {
    throw new HardenError(`onnxruntime-web cannot run the guard model: ${String((e as Error).message).split('\n')[0]}`);
  }
  let maxAbsDiff = 0;
  for (const [name, t] of want) {
    const a = t.data as Float32Array, b = got.get(name);
    if (!b || b.length !== a.length) throw new HardenError(`onnxruntime-web gives no matching output '${name}'`);
    if (name !== INTERFERENCE_FLAG) for (let k = 0; k < a.length; k++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(a[k]! - b[k]!));
  }
  const flagNode = want.get(INTERFERENCE_FLAG)!.data as Float32Array, flagWeb = got.get(INTERFERENCE_FLAG)!;
  let flagMismatches = 0, flagged = 0;
  flagNode.forEach((f, k) => {
    if (f !== flagWeb[k]) flagMismatches++;
    if (f) flagged++;
  });
  return { images: x.shape[0]!, outputs: [...want.keys()], maxAbsDiff, flagMismatches, flagged };
}

/** A batch for the runtime check: the first images of `data`, else seeded uniform noise. */
function checkBatch(proto: ReturnType<typeof stitchSourceHead>['proto'], data: Dataset | undefined, seed: number): HostTensor {
  if (data) return batches(data, { batchSize: Math.min(64, data.labels.length), seed: 0, shuffle: false }).next().value!.x;
  const dims = proto.graph!.input[0]!.type?.tensor_type?.shape?.dim ?? [];
  const shape = dims.map((d, i) => (i === 0 ? 8 : d.value === 'dim_value' ? Number(d.dim_value) : 0));
  if (shape.length < 2 || shape.some((d) => !(d > 0))) throw new HardenError('the model input has no fixed image size; give --data for the runtime check');
  const rng = new Random(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return { dtype: 'float32', shape, data: Float32Array.from({ length: n }, () => rng.next()) };
}

export async function writeGuard(source: NamedModel, finetuned: NamedModel, o: GuardOptions): Promise<{ output: string; lingering: number[]; pLo: number; runtimes: RuntimeAgreement }> {
  const { proto } = stitchSourceHead(finetuned.model, finetuned.name, source.model, source.name, { lingering: o.lingering, pLo: o.pLo });
  setMetadata(proto, HARDEN_METADATA_KEY, JSON.stringify({
    version: HARDEN_VERSION,
    operation: 'guard',
    settings: { lingering: o.lingering, pLo: o.pLo, source: source.name, finetuned: finetuned.name },
    figures: { outputs: proto.graph!.output.map((v) => v.name) },
  }));
  if (source.model.path && path.resolve(o.output) === source.model.path) throw new HardenError(`refusing to write the guard model over the source model ${source.name}`);
  const runtimes = await compareRuntimes(encodeModel(proto), checkBatch(proto, o.checkData, o.seed ?? 0));
  if (runtimes.maxAbsDiff > 1e-4 || runtimes.flagMismatches > 0) {
    throw new HardenError(`the guard model's outputs differ between onnxruntime-node and -web (max |diff| ${runtimes.maxAbsDiff.toExponential(2)}, ${runtimes.flagMismatches} flags)`, 1);
  }
  await saveModel(proto, o.output, { overwrite: o.overwrite, inputPath: finetuned.model.path, sourceBaseDir: finetuned.model.baseDir });
  return { output: o.output, lingering: o.lingering, pLo: o.pLo, runtimes };
}

