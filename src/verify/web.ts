/**
 * The browser runtime check: the exported model must load in onnxruntime-web (its wasm backend,
 * run here in Node) and give the same outputs as onnxruntime-node on a seeded batch.
 */
import * as ortWeb from 'onnxruntime-web';
import { HardenError } from '../errors.js';
import type { Dataset } from '../data/types.js';
import { batches } from '../data/loader.js';
import { createSession, runSession } from './ort.js';

export interface WebCheck {
  runtime: 'onnxruntime-web (wasm)';
  images: number;
  /** max |web − node| over every output element. */
  maxAbsDiff: number;
  /** Predicted classes that differ. */
  argmaxMismatches: number;
}

/** Run the first `images` of `data` through both runtimes and compare the first output. */
export async function checkWebRuntime(bytes: Uint8Array, data: Dataset, images = 64): Promise<WebCheck> {
  const batch = batches(data, { batchSize: Math.min(images, data.labels.length), seed: 0, shuffle: false }).next().value;
  if (!batch) throw new HardenError(`browser-runtime check: '${data.name}' is empty`);
  const node = await createSession(bytes);
  const expected = (await runSession(node, { [node.inputNames[0]!]: batch.x })).get(node.outputNames[0]!)!;
  await node.release();
  ortWeb.env.wasm.numThreads = 1;
  let got: Float32Array;
  try {
    const web = await ortWeb.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
    const out = await web.run({ [web.inputNames[0]!]: new ortWeb.Tensor('float32', batch.x.data as Float32Array, batch.x.shape) });
    got = Float32Array.from(out[web.outputNames[0]!]!.data as Float32Array);
    await web.release();
  } catch (e) {
    throw new HardenError(`onnxruntime-web cannot run the exported model: ${String((e as Error).message).split('\n')[0]}`);
  }
  const want = expected.data as Float32Array;
  const classes = expected.shape.at(-1) ?? 1;
  let maxAbsDiff = 0, argmaxMismatches = 0;
  for (let i = 0; i < want.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(want[i]! - got[i]!));
  const argmax = (a: Float32Array, row: number) => {
    let best = 0;
    for (let c = 1; c < classes; c++) if (a[row * classes + c]! > a[row * classes + best]!) best = c;
    return best;
  };
  for (let r = 0; r < want.length / classes; r++) if (argmax(want, r) !== argmax(got, r)) argmaxMismatches++;
  return { runtime: 'onnxruntime-web (wasm)', images: batch.y.length, maxAbsDiff, argmaxMismatches };
}
