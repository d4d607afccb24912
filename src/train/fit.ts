import { HardenError } from '../errors.js';
import type { Dataset } from '../data/types.js';
import type { ImportedGraph } from '../import/graph.js';
import { toNumber, type ModelProto } from '../onnx/schema.js';

function check(declared: (number | string | undefined)[], data: Dataset, what: string): void {
  const fits = declared.length === 3 && declared.every((d, i) => typeof d !== 'number' || d <= 0 || d === data.shape[i]);
  if (!fits) {
    throw new HardenError(`${what} images are [${data.shape.join(', ')}] but the model takes [${declared.join(', ')}] (use size= / channels= in the dataset spec)`);
  }
}

/** The model's declared input [C, H, W] must take the dataset's images (symbolic dims take anything). */
export function checkImagesFit(graph: ImportedGraph, data: Dataset, what: string): void {
  check(graph.inputs[0]!.shape.slice(1), data, what);
}

/** The same check on a ModelProto's first graph input that is not an initializer. */
export function checkModelTakes(proto: ModelProto, data: Dataset, what: string): void {
  const inits = new Set(proto.graph?.initializer.map((t) => t.name) ?? []);
  const input = proto.graph?.input.find((i) => !inits.has(i.name));
  const dims = input?.type?.tensor_type?.shape?.dim;
  if (!dims) return; // no declared shape: onnxruntime decides
  check(dims.slice(1).map((d) => (d.value === 'dim_value' ? toNumber(d.dim_value) : (d.dim_param ?? '?'))), data, what);
}
