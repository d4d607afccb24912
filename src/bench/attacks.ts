/**
 * Wall time of the fine-tuning attacks (pl and slc, each with its scratch reference) on the
 * ort engine, in this thread and on worker threads: what `harden verify --workers` buys.
 * The figures must not change with the pool size; `sameFigures` records that they did not.
 */
import path from 'node:path';
import { loadModel } from '../onnx/model.js';
import { loadDataset } from '../data/index.js';
import { selectEngine, selectedEngine } from '../engine/create.js';
import { withAttackJobs } from '../verify/attack-pool.js';
import { transferAdvantage } from '../verify/piggyback.js';
import { slcAttack } from '../verify/slc.js';
import { splitDataset } from '../verify/split.js';

export async function benchAttacks(root: string, workerCounts: number[]): Promise<Record<string, unknown>> {
  const previous = selectedEngine();
  selectEngine('ort');
  try {
    const model = await loadModel(path.join(root, 'models', 'lenet5-fashion-mnist.onnx'));
    const test = await loadDataset('fashion-mnist:split=test,classes=5-9');
    const plPool = splitDataset(await loadDataset('fashion-mnist:split=train,classes=5-9,per-class=20,seed=100'), 0.5, 0);
    const slcPool = splitDataset(await loadDataset('fashion-mnist:split=train,classes=5-9,per-class=300,seed=101'), 0.2, 0);
    const pl = { epochs: 10, batchSize: 10, learningRates: [1e-3, 3e-3], seed: 0 };
    const slc = { fractions: [0.01, 0.1, 1], steps: 100, batchSize: 32, learningRates: [1e-3, 3e-3], seed: 0 };
    const runs = [];
    for (const workers of workerCounts) {
      process.stderr.write(`bench attacks on ${workers} worker(s)...\n`);
      const t0 = performance.now();
      const figures = await withAttackJobs(workers, async (run) => {
        const [p, s] = await Promise.all([
          transferAdvantage(model, 0, { ...plPool, test }, pl, run),
          slcAttack(model, { ...slcPool, test }, slc, 0, { run }),
        ]);
        return { plAccuracy: p.pl.accuracy, plScratch: p.scratch.accuracy, slcAuc: s.slcAuc };
      });
      runs.push({ workers, seconds: Number(((performance.now() - t0) / 1000).toFixed(2)), ...figures });
    }
    const first = JSON.stringify({ ...runs[0], workers: 0, seconds: 0 });
    return {
      model: 'models/lenet5-fashion-mnist.onnx',
      jobs: { pl: 2 * pl.learningRates.length, slc: 2 * slc.fractions.length * slc.learningRates.length },
      runs,
      sameFigures: runs.every((r) => JSON.stringify({ ...r, workers: 0, seconds: 0 }) === first),
    };
  } finally {
    selectEngine(previous);
  }
}
