/**
 * Chooses and initializes the tfjs backend Harden trains on, after registering Harden's
 * gradients and wasm kernels (once).
 *
 *   tensorflow  @tensorflow/tfjs-node(-gpu), optional, not a dependency
 *   wasm        XNNPACK; multi-threaded when HARDEN_WASM_THREADS (default: CPU count) > 1
 *   cpu         pure JS, always available
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
// tfjs's own gradients (Slice, Pad, MatMul, ...) must be registered before Harden overrides
// some of them: tfjs-core's Node bundle registers none, the union package does.
import '../tfjs-setup.js';
import { ExitCode, HardenError } from '../errors.js';
import { registerHardenKernels } from './gradients/index.js';
import { installThreadedWasm, requestedWasmThreads } from './wasm-threads.js';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

const TFJS_NODE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'];

/** Imports tfjs-node (GPU build first); true if it registered the 'tensorflow' backend here. */
async function loadTfjsNode(): Promise<boolean> {
  for (const name of TFJS_NODE_PACKAGES) {
    try {
      await import(name);
    } catch {
      continue;
    }
    // A tfjs-node bundling another copy of tfjs-core registers into that copy instead.
    if (tf.findBackendFactory('tensorflow') != null) return true;
  }
  return false;
}

async function activate(name: BackendName): Promise<boolean> {
  try {
    if (!(await tf.setBackend(name))) return false;
    await tf.ready();
    return tf.getBackend() === name;
  } catch {
    return false;
  }
}

/**
 * Initializes `requested` ('auto': tensorflow, else wasm, else cpu) and returns the name of
 * the active backend. An explicitly requested backend that cannot start is a HardenError.
 */
export async function initBackend(requested: BackendName | 'auto' = 'auto'): Promise<BackendName> {
  registerHardenKernels();
  const auto = requested === 'auto';
  if (auto || requested === 'tensorflow') {
    if ((await loadTfjsNode()) && (await activate('tensorflow'))) return 'tensorflow';
    if (!auto) {
      throw new HardenError(
        "backend 'tensorflow' needs @tensorflow/tfjs-node, which is not installed (npm i @tensorflow/tfjs-node)",
        ExitCode.Unavailable);
    }
  }
  if (auto || requested === 'wasm') {
    installThreadedWasm(requestedWasmThreads());
    if (await activate('wasm')) return 'wasm';
    if (!auto) throw new HardenError("backend 'wasm' failed to initialize", ExitCode.Unavailable);
  }
  if (await activate('cpu')) return 'cpu';
  throw new HardenError("backend 'cpu' failed to initialize", ExitCode.Unavailable);
}

/** The active backend (throws if it is not one Harden knows). */
export function activeBackend(): BackendName {
  const name = tf.getBackend();
  if (name === 'tensorflow' || name === 'wasm' || name === 'cpu') return name;
  throw new Error(`unexpected tfjs backend '${name}'; call initBackend() first`);
}
