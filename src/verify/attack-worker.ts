/** A worker thread of attack-pool.ts: sets up the parent's engine, then runs jobs as they come. */
import { parentPort, workerData } from 'node:worker_threads';
import { HardenError } from '../errors.js';
import { selectEngine } from '../engine/create.js';
import { initBackend } from '../engine/backend.js';
import { setOrtThreads, useDevice } from './ort.js';
import { runAttackJob, type AttackJob } from './jobs.js';
import type { WorkerReply, WorkerSetup } from './attack-pool.js';

const setup = workerData as WorkerSetup;
const ready = (async () => {
  selectEngine(setup.engine);
  setOrtThreads(setup.threads);
  if (setup.device === 'cuda') await useDevice('cuda', true);
  if (setup.backend) await initBackend(setup.backend);
})();

parentPort!.on('message', async (job: AttackJob) => {
  let reply: WorkerReply;
  try {
    await ready;
    const result = await runAttackJob(job);
    // A copy owns its whole buffer, so the transfer below moves exactly the model's bytes.
    reply = { result: { ...result, model: new Uint8Array(result.model) } };
  } catch (e) {
    const err = e as Error;
    reply = { error: { message: err.message, harden: e instanceof HardenError, exitCode: e instanceof HardenError ? e.exitCode : undefined, stack: err.stack } };
  }
  parentPort!.postMessage(reply, 'result' in reply ? [reply.result.model.buffer as ArrayBuffer] : []);
});
