import { HardenError } from '../errors.js';
import type { Dataset } from '../data/types.js';
import type { ImportedGraph } from '../import/graph.js';

/** The model's declared input [C, H, W] must take the dataset's images (symbolic dims take anything). */
export function checkImagesFit(graph: ImportedGraph, data: Dataset, what: string): void {
  const declared = graph.inputs[0]!.shape.slice(1);
  const fits = declared.length === 3 && declared.every((d, i) => typeof d !== 'number' || d <= 0 || d === data.shape[i]);
  if (!fits) {
    throw new HardenError(`${what} images are [${data.shape.join(', ')}] but the model takes [${declared.join(', ')}] (use size= / channels= in the dataset spec)`);
  }
}
