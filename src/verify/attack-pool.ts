/**
 * Runs the fine-tuning attacks' jobs (jobs.ts) on worker threads, so that independent runs — the
 * learning rates of a grid, the points of a learning curve, the model and its scratch reference —
 * use every core. Small attack models keep onnxruntime's intra-op threads mostly idle, so two
 * single-threaded workers finish about twice the work of one two-threaded process.
 *
 * With one worker, jobs run in this thread one after another. Each job's
 * result depends only on the job (its seed, data and start weights), not on which worker ran it
 * or in what order, so the same run gives the same figures with any pool size of the same
 * threads per worker. Data sets travel once as SharedArrayBuffers; models as ONNX bytes.
 */
import os from 'node:os';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Dataset } from '../data/types.js';
import { HardenError } from '../errors.js';
import { selectedEngine, type EngineName } from '../engine/create.js';
import { activeBackend, type BackendName } from '../engine/backend.js';
import { currentOrtProvider } from './ort.js';
import { inThisThread, type AttackJob, type AttackJobResult, type JobRunner } from './jobs.js';

/** What a worker needs to run jobs as this thread would. */
export interface WorkerSetup {
  engine: EngineName;
  /** tfjs backend (tfjs engine only). */
  backend?: BackendName;
  device: 'cpu' | 'cuda';
  /** onnxruntime intra-op threads per worker. */
  threads: number;
}

/** A worker's answer to its one job in flight. */
export type WorkerReply =
  | { result: AttackJobResult }
  | { error: { message: string; harden: boolean; exitCode?: number; stack?: string } };

/** A --workers value: a positive integer, or `auto` for one worker per core. */
export function parseWorkers(value: string | number): number {
  const n = value === 'auto' ? os.cpus().length : Number(value);
  if (!Number.isInteger(n) || n < 1) throw new HardenError(`--workers must be a positive integer or auto, got '${value}'`);
  return n;
}

/** The compiled worker script (tests run sources under vitest, so they use the build in dist/). */
function workerScript(): string {
  const here = fileURLToPath(import.meta.url);
  const built = here.endsWith('.ts') ? path.join(path.dirname(here), '..', '..', 'dist', 'verify', 'attack-worker.js') : path.join(path.dirname(here), 'attack-worker.js');
  if (!existsSync(built)) throw new Error(`attack worker script ${built} is missing; run npm run build`);
  return built;
}

const shared = new WeakMap<Dataset, Dataset>();

/** The data set with its arrays in SharedArrayBuffers (copied once per data set). */
function sharedDataset(d: Dataset): Dataset {
  if (d.images.buffer instanceof SharedArrayBuffer) return d;
  let s = shared.get(d);
  if (!s) {
    const images = new Float32Array(new SharedArrayBuffer(d.images.byteLength));
    images.set(d.images);
    const labels = new Int32Array(new SharedArrayBuffer(d.labels.byteLength));
    labels.set(d.labels);
    s = { ...d, images, labels };
    shared.set(d, s);
  }
  return s;
}

function shareJob(job: AttackJob): AttackJob {
  return { ...job, train: { ...job.train, dataset: sharedDataset(job.train.dataset) }, val: sharedDataset(job.val) };
}

interface Pending {
  job: AttackJob;
  resolve(r: AttackJobResult): void;
  reject(e: Error): void;
}

/** A fixed set of workers taking queued jobs in order. */
export class AttackPool {
  private readonly workers: { worker: Worker; busy?: Pending }[] = [];
  private readonly queue: Pending[] = [];
  private failure?: Error;
  private closing = false;

  constructor(readonly size: number, setup: WorkerSetup = currentSetup(size)) {
    const script = workerScript();
    for (let i = 0; i < size; i++) {
      const worker = new Worker(script, { workerData: setup, env: { ...process.env, HARDEN_WASM_THREADS: '1' } });
      const slot: (typeof this.workers)[number] = { worker };
      worker.on('message', (reply: WorkerReply) => this.settle(slot, reply));
      worker.on('error', (e) => this.crash(slot, e));
      worker.on('exit', (code) => { if (code !== 0 && !this.closing) this.crash(slot, new Error(`attack worker exited with code ${code}`)); });
      this.workers.push(slot);
    }
  }

  run(job: AttackJob): Promise<AttackJobResult> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.queue.push({ job: shareJob(job), resolve, reject });
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const p of this.queue.splice(0)) p.reject(new Error('attack pool closed'));
    for (const slot of this.workers) slot.busy?.reject(new Error('attack pool closed'));
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }

  private dispatch(): void {
    for (const slot of this.workers) {
      if (slot.busy || !this.queue.length) continue;
      slot.busy = this.queue.shift()!;
      slot.worker.postMessage(slot.busy.job);
    }
  }

  private settle(slot: (typeof this.workers)[number], reply: WorkerReply): void {
    const busy = slot.busy!;
    slot.busy = undefined;
    if ('result' in reply) busy.resolve(reply.result);
    else busy.reject(rebuildError(reply.error));
    this.dispatch();
  }

  /** A worker that dies takes the pool down: every waiting job fails with its error. */
  private crash(slot: (typeof this.workers)[number], e: Error): void {
    this.failure ??= e;
    slot.busy?.reject(e);
    slot.busy = undefined;
    for (const p of this.queue.splice(0)) p.reject(e);
  }
}

function rebuildError(e: Extract<WorkerReply, { error: unknown }>['error']): Error {
  if (e.harden) return new HardenError(e.message, e.exitCode);
  const error = new Error(e.message);
  if (e.stack) error.stack = e.stack;
  return error;
}

function currentSetup(workers: number): WorkerSetup {
  const engine = selectedEngine();
  return {
    engine,
    ...(engine === 'tfjs' ? { backend: activeBackend() } : {}),
    device: currentOrtProvider(),
    threads: Math.max(1, Math.floor(os.cpus().length / workers)),
  };
}

/**
 * Runs `f` with a job runner: a pool of `workers` worker threads (closed afterwards), or this
 * thread, one job at a time, when `workers` is 1.
 */
export async function withAttackJobs<T>(workers: number, f: (run: JobRunner) => Promise<T>): Promise<T> {
  if (!(Number.isInteger(workers) && workers >= 1)) throw new Error(`withAttackJobs: workers must be a positive integer, got ${workers}`);
  if (workers === 1) return f(inThisThread());
  const pool = new AttackPool(workers);
  try {
    return await f((job) => pool.run(job));
  } finally {
    await pool.close();
  }
}
