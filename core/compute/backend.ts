// Chooses the TensorFlow.js backend at run time, best first, and says why.
//
// Order: native TensorFlow (tfjs-node-gpu, then tfjs-node: only where the user's machine could
// install them, since their install downloads libtensorflow) > WASM (SIMD) > pure-JS cpu.
// Step 2 adds WebGPU between native and WASM. Whatever is chosen is recorded with every run.
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { BackendUnavailableError } from '../api/errors';

export const BACKEND_CHOICES = ['auto', 'tfjs-node-gpu', 'tfjs-node', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

export interface BackendInfo {
  /** What the caller asked for. */
  requested: BackendChoice;
  /** The provider actually in use. */
  provider: Exclude<BackendChoice, 'auto'>;
  /** TF.js's own backend name (`tensorflow`, `wasm`, `cpu`). */
  tfBackend: string;
  versions: Record<string, string>;
  features: { simd?: boolean; threads?: boolean };
  /** Why providers earlier in the order were passed over. */
  notes: string[];
}

/** Kernels whose absence means a backend cannot train conv nets (WASM lacks them until step 2). */
const CONV_TRAINING_KERNELS = ['Conv2DBackpropFilter', 'Conv2DBackpropInput'] as const;

const requireFromHere = createRequire(__filename);

function packageVersion(name: string): string | undefined {
  try {
    return (requireFromHere(`${name}/package.json`) as { version: string }).version;
  } catch {
    return undefined;
  }
}

/** Whether a package resolves from core (optional backends are looked for, never required). */
export function isInstalled(name: string): boolean {
  try {
    requireFromHere.resolve(name);
    return true;
  } catch {
    return false;
  }
}

/** Keeps TF.js from printing its "hi there, use tfjs-node" banner and kernel-registration noise. */
function quietTf(): void {
  tf.env().set('PROD', true);
}

async function tryNative(provider: 'tfjs-node-gpu' | 'tfjs-node', notes: string[]): Promise<boolean> {
  if (!isInstalled(`@tensorflow/${provider}`)) {
    notes.push(`${provider}: not installed (optional; \`npm i @tensorflow/${provider}\` where libtensorflow can be downloaded)`);
    return false;
  }
  try {
    requireFromHere(`@tensorflow/${provider}`);
  } catch (error) {
    notes.push(`${provider}: installed but failed to load (${(error as Error).message.split('\n')[0]})`);
    return false;
  }
  // tfjs-node registers 'tensorflow' on its own copy of tfjs-core; if that copy is not ours the
  // registration is invisible here and we must not pretend it worked.
  if (!tf.findBackendFactory('tensorflow')) {
    notes.push(`${provider}: loaded, but registered on another @tensorflow/tfjs-core copy (versions differ from @tensorflow/tfjs ${tf.version.tfjs})`);
    return false;
  }
  if (!(await tf.setBackend('tensorflow'))) {
    notes.push(`${provider}: the 'tensorflow' backend failed to initialise`);
    return false;
  }
  return true;
}

async function tryWasm(notes: string[]): Promise<boolean> {
  try {
    requireFromHere('@tensorflow/tfjs-backend-wasm');
  } catch (error) {
    notes.push(`wasm: @tensorflow/tfjs-backend-wasm failed to load (${(error as Error).message.split('\n')[0]})`);
    return false;
  }
  if (!(await tf.setBackend('wasm'))) {
    notes.push('wasm: the backend failed to initialise');
    return false;
  }
  return true;
}

function missingConvTrainingKernels(tfBackend: string): string[] {
  return CONV_TRAINING_KERNELS.filter((kernel) => tf.getKernel(kernel, tfBackend) === undefined);
}

export interface BackendNeeds {
  /** The model has conv layers and will be trained, so the backend needs conv gradient kernels. */
  trainsConv?: boolean;
}

/**
 * Initialise TF.js on the best available backend (or the one asked for) and return what was chosen.
 * TF.js has one global engine per process: calling again with a different choice switches backends.
 */
export async function selectBackend(requested: BackendChoice = 'auto', needs: BackendNeeds = {}): Promise<BackendInfo> {
  quietTf();
  const notes: string[] = [];
  const order: Array<Exclude<BackendChoice, 'auto'>> =
    requested === 'auto' ? ['tfjs-node-gpu', 'tfjs-node', 'wasm', 'cpu'] : [requested];

  for (const provider of order) {
    let ok: boolean;
    if (provider === 'tfjs-node-gpu' || provider === 'tfjs-node') ok = await tryNative(provider, notes);
    else if (provider === 'wasm') ok = await tryWasm(notes);
    else ok = await tf.setBackend('cpu');
    if (!ok) continue;

    const tfBackend = tf.getBackend();
    const missing = needs.trainsConv ? missingConvTrainingKernels(tfBackend) : [];
    if (missing.length > 0) {
      notes.push(`${provider}: cannot train conv layers (no ${missing.join(', ')} kernel on '${tfBackend}')`);
      continue;
    }
    return describe(requested, provider, tfBackend, notes);
  }

  const why = notes.join('; ');
  throw new BackendUnavailableError(
    requested === 'auto'
      ? `No TensorFlow.js backend could run this job (${why}).`
      : `Backend '${requested}' is not usable here (${why}). Run \`ticket-lab doctor\` or pass --backend auto.`,
  );
}

function describe(requested: BackendChoice, provider: Exclude<BackendChoice, 'auto'>, tfBackend: string, notes: string[]): BackendInfo {
  const versions: Record<string, string> = { node: process.versions.node, 'tfjs-core': tf.version_core };
  const pkg = provider === 'wasm' ? '@tensorflow/tfjs-backend-wasm' : provider === 'cpu' ? '@tensorflow/tfjs-backend-cpu' : `@tensorflow/${provider}`;
  const v = packageVersion(pkg);
  if (v) versions[pkg] = v;
  const features: BackendInfo['features'] = {};
  if (provider === 'wasm') {
    features.simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT');
    // TF.js switches WASM threads off in Node (tensorflow/tfjs#3830): the WASM backend is one core here.
    features.threads = tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT');
  }
  return { requested, provider, tfBackend, versions, features, notes: [...notes] };
}
