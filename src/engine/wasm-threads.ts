/**
 * Multi-threaded XNNPACK for tfjs's wasm backend under Node.
 *
 * tfjs-backend-wasm ships a threaded SIMD binary but never uses it in Node: its
 * WASM_HAS_MULTITHREAD_SUPPORT flag is hard-wired false there (tfjs issue #3830), its
 * loader hands Emscripten's pthread workers blob: URLs that worker_threads cannot open,
 * and the C++ side caps the pool at (logical cores / 2). This module instantiates the
 * threaded binary itself: the pthread worker script is written to a file, the main
 * script is passed by path, and the core count the C++ side sees is set so the cap is
 * the requested thread count. Everything else is tfjs's own BackendWasm.
 *
 * Pinned to @tensorflow/tfjs-backend-wasm 4.22 internals; any failure falls back to the
 * stock single-threaded backend.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { BackendWasm, setThreadsCount, version_wasm } from '@tensorflow/tfjs-backend-wasm';

const require = createRequire(import.meta.url);
const BASENAME = 'tfjs-backend-wasm-threaded-simd';
const INIT_TIMEOUT_MS = 30_000;

type WasmModule = ConstructorParameters<typeof BackendWasm>[0];
type Instantiate = (
  imports: WebAssembly.Imports & { env: WebAssembly.ModuleImports },
  receive: (instance: WebAssembly.Instance, module: WebAssembly.Module) => void,
) => object;
type Factory = (config: {
  locateFile: (file: string) => string;
  mainScriptUrlOrBlob: string;
  instantiateWasm: Instantiate;
}) => Promise<WasmModule & {
  cwrap: (name: string, ret: string | null, args: string[]) => unknown;
  PThread: { runningWorkers: { unref(): void }[] };
}>;

/** The thread count Harden asks for: HARDEN_WASM_THREADS, else the CPU count (max 8). */
export function requestedWasmThreads(): number {
  const fromEnv = Number.parseInt(process.env.HARDEN_WASM_THREADS ?? '', 10);
  if (Number.isFinite(fromEnv) && fromEnv >= 1) return Math.min(fromEnv, 8);
  const cpus = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, Math.min(cpus, 8));
}

function workerScript(): string {
  const dir = wasmOutDir();
  const { wasmWorkerContents } = require(path.join(dir, `${BASENAME}.worker.js`)) as { wasmWorkerContents: string };
  const file = path.join(os.tmpdir(), `harden-${BASENAME}-${version_wasm}-worker.cjs`);
  // The contents come from a template literal, so its "\n" escapes became real newlines.
  const source = wasmWorkerContents.replace(/\n/g, '\\n');
  if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== source) fs.writeFileSync(file, source);
  return file;
}

function wasmOutDir(): string {
  return path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'wasm-out');
}

async function createThreadedBackend(threads: number): Promise<BackendWasm> {
  const dir = wasmOutDir();
  const mainScript = path.join(dir, `${BASENAME}.js`);
  const factory = require(mainScript) as Factory;
  const worker = workerScript();
  const binary = fs.readFileSync(path.join(dir, `${BASENAME}.wasm`));
  let fail: (reason: unknown) => void = () => {};
  let timer: NodeJS.Timeout | undefined;
  const failed = new Promise<never>((_, reject) => {
    fail = reject;
    timer = setTimeout(() => reject(new Error('threaded wasm did not start')), INIT_TIMEOUT_MS);
  });
  const instantiateWasm: Instantiate = (imports, receive) => {
    // The C++ side uses min(threads requested, logical cores / 2).
    imports.env.emscripten_num_logical_cores = () => 2 * threads;
    WebAssembly.instantiate(binary, imports).then((r) => receive(r.instance, r.module), fail);
    return {};
  };
  const loading = factory({
    locateFile: (file) => (file.endsWith('.worker.js') ? worker : path.join(dir, file)),
    mainScriptUrlOrBlob: mainScript,
    instantiateWasm,
  });
  const module = await Promise.race([loading, failed]).finally(() => clearTimeout(timer));
  module.tfjs = {
    init: module.cwrap('init', null, []),
    initWithThreadsCount: module.cwrap('init_with_threads_count', null, ['number']),
    getThreadsCount: module.cwrap('get_threads_count', 'number', []),
    registerTensor: module.cwrap('register_tensor', null, ['number', 'number', 'number']),
    disposeData: module.cwrap('dispose_data', null, ['number']),
    dispose: module.cwrap('dispose', null, []),
  } as WasmModule['tfjs'];
  setThreadsCount(threads);
  const backend = new BackendWasm(module);
  // XNNPACK's pool threads are now running pthreads, which Emscripten keeps ref'd: without
  // this, Node would never exit on its own.
  for (const pthread of module.PThread.runningWorkers) pthread.unref();
  return backend;
}

let installed = false;

/**
 * Makes the next initialization of the 'wasm' backend use `threads` XNNPACK threads,
 * falling back to tfjs's stock (single-threaded) factory if the threaded one fails.
 * Has no effect once the wasm backend has been created. Returns whether it was installed.
 */
export function installThreadedWasm(threads: number): boolean {
  if (installed) return true;
  if (threads < 2 || tf.engine().registry['wasm'] != null) return false;
  const stock = tf.findBackendFactory('wasm');
  if (stock == null) return false;
  tf.removeBackend('wasm');
  tf.registerBackend('wasm', async () => {
    try {
      return await createThreadedBackend(threads);
    } catch {
      return await stock();
    }
  }, 2);
  installed = true;
  return true;
}
