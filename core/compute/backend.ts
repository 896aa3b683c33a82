// Chooses the TensorFlow.js backend at run time, best first, and says why.
//
// Order: native TensorFlow (tfjs-node-gpu, then tfjs-node: only where the user's machine could
// install them, since their install downloads libtensorflow) > WebGPU (Dawn, a real GPU adapter)
// > WASM (SIMD) > pure-JS cpu. Whatever is chosen is recorded with every run.
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { BackendUnavailableError } from '../api/errors';
import { BackendChoice as BackendChoiceSchema } from '../api/schemas';
import './kernels/register-all';
import { type GpuAdapterInfo, adapterLabel, loadTfWebGpuBackend, probeWebGpu } from './webgpu';

export const BACKEND_CHOICES = BackendChoiceSchema.options;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];
export type BackendProvider = Exclude<BackendChoice, 'auto'>;
/** Best first: what 'auto' tries. */
export const PROVIDER_ORDER: readonly BackendProvider[] = ['tfjs-node-gpu', 'tfjs-node', 'webgpu', 'wasm', 'cpu'];

export interface BackendInfo {
  /** What the caller asked for. */
  requested: BackendChoice;
  /** The provider actually in use. */
  provider: BackendProvider;
  /** TF.js's own backend name (`tensorflow`, `webgpu`, `wasm`, `cpu`). */
  tfBackend: string;
  versions: Record<string, string>;
  features: { simd?: boolean; threads?: boolean };
  /** The GPU, when the provider is WebGPU. */
  adapter?: GpuAdapterInfo;
  /** Why providers earlier in the order were passed over. */
  notes: string[];
  /** What a user must be told (printed by the CLI): a GPU that is there but unusable, a software adapter in use. */
  warnings: string[];
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

/**
 * WebGPU on the adapter Dawn finds. 'auto' takes only a hardware adapter; a software one
 * (SwiftShader) is used only when asked for by name, and said so.
 */
async function tryWebGpu(explicit: boolean, notes: string[], warnings: string[]): Promise<GpuAdapterInfo | undefined> {
  const probe = await probeWebGpu();
  if (!probe.ok) {
    notes.push(`webgpu: ${probe.reason}`);
    // Dawn is installed but sees no GPU: say so, since a user with a GPU expects it to be used.
    if (isInstalled('webgpu')) warnings.push(`WebGPU is not usable here: ${probe.reason}.`);
    return undefined;
  }
  if (probe.adapter.software && !explicit) {
    notes.push(`webgpu: the only adapter is ${adapterLabel(probe.adapter)}, a software fallback, slower than wasm (use it with --backend webgpu)`);
    return undefined;
  }
  try {
    loadTfWebGpuBackend();
  } catch (error) {
    notes.push(`webgpu: @tensorflow/tfjs-backend-webgpu failed to load (${(error as Error).message.split('\n')[0]})`);
    return undefined;
  }
  if (!tf.findBackendFactory('webgpu') || !(await tf.setBackend('webgpu'))) {
    notes.push('webgpu: the TF.js WebGPU backend failed to initialise');
    return undefined;
  }
  if (probe.adapter.software) warnings.push(`Training on ${adapterLabel(probe.adapter)}: a software GPU, correct but slow.`);
  return probe.adapter;
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

/** Makes `provider` TF.js's backend if it can run here; why not goes to `notes`. */
async function tryProvider(provider: BackendProvider, explicit: boolean, notes: string[], warnings: string[]): Promise<{ ok: boolean; adapter?: GpuAdapterInfo }> {
  if (provider === 'tfjs-node-gpu' || provider === 'tfjs-node') return { ok: await tryNative(provider, notes) };
  if (provider === 'webgpu') {
    const adapter = await tryWebGpu(explicit, notes, warnings);
    return adapter ? { ok: true, adapter } : { ok: false };
  }
  if (provider === 'wasm') return { ok: await tryWasm(notes) };
  return { ok: await tf.setBackend('cpu') };
}

/**
 * Initialise TF.js on the best available backend (or the one asked for) and return what was chosen.
 * TF.js has one global engine per process: calling again with a different choice switches backends.
 */
export async function selectBackend(requested: BackendChoice = 'auto', needs: BackendNeeds = {}): Promise<BackendInfo> {
  quietTf();
  const notes: string[] = [];
  const warnings: string[] = [];
  const order = requested === 'auto' ? PROVIDER_ORDER : [requested];

  for (const provider of order) {
    const { ok, adapter } = await tryProvider(provider, requested === provider, notes, warnings);
    if (!ok) continue;
    const tfBackend = tf.getBackend();
    const missing = needs.trainsConv ? missingConvTrainingKernels(tfBackend) : [];
    if (missing.length > 0) {
      notes.push(`${provider}: cannot train conv layers (no ${missing.join(', ')} kernel on '${tfBackend}')`);
      continue;
    }
    return describe(requested, provider, tfBackend, notes, warnings, adapter);
  }

  const why = notes.join('; ');
  throw new BackendUnavailableError(
    requested === 'auto'
      ? `No TensorFlow.js backend could run this job (${why}).`
      : `Backend '${requested}' is not usable here (${why}). Run \`ticket-lab doctor\` or pass --backend auto.`,
  );
}

export interface BackendProbe {
  provider: BackendProvider;
  usable: boolean;
  detail: string;
  adapter?: GpuAdapterInfo;
  trainsConv: boolean | null;
}

/**
 * Tries every provider in turn (WebGPU as if asked for by name, so a software adapter shows up),
 * for `ticket-lab doctor`. Leaves TF.js on whichever worked last: select a backend afterwards.
 */
export async function probeBackends(): Promise<BackendProbe[]> {
  quietTf();
  const probes: BackendProbe[] = [];
  for (const provider of PROVIDER_ORDER) {
    const notes: string[] = [];
    const warnings: string[] = [];
    const { ok, adapter } = await tryProvider(provider, true, notes, warnings);
    if (!ok) {
      probes.push({ provider, usable: false, detail: notes.map((n) => n.replace(/^[\w-]+: /, '')).join('; '), trainsConv: null });
      continue;
    }
    const tfBackend = tf.getBackend();
    const missing = missingConvTrainingKernels(tfBackend);
    const what = adapter ? `on ${adapterLabel(adapter)}` : provider === 'wasm' ? `SIMD ${tf.env().getBool('WASM_HAS_SIMD_SUPPORT') ? 'on' : 'off'}, one thread` : `TF.js backend '${tfBackend}'`;
    probes.push({
      provider,
      usable: true,
      detail: [what, ...warnings, ...(missing.length ? [`no ${missing.join(', ')}: cannot train conv nets`] : [])].join('; '),
      ...(adapter ? { adapter } : {}),
      trainsConv: missing.length === 0,
    });
  }
  return probes;
}

const PROVIDER_PACKAGES: Record<BackendProvider, string[]> = {
  'tfjs-node-gpu': ['@tensorflow/tfjs-node-gpu'],
  'tfjs-node': ['@tensorflow/tfjs-node'],
  webgpu: ['@tensorflow/tfjs-backend-webgpu', 'webgpu'],
  wasm: ['@tensorflow/tfjs-backend-wasm'],
  cpu: ['@tensorflow/tfjs-backend-cpu'],
};

function describe(requested: BackendChoice, provider: BackendProvider, tfBackend: string, notes: string[], warnings: string[], adapter?: GpuAdapterInfo): BackendInfo {
  const versions: Record<string, string> = { node: process.versions.node, 'tfjs-core': tf.version_core };
  for (const pkg of PROVIDER_PACKAGES[provider]) {
    const v = packageVersion(pkg);
    if (v) versions[pkg] = v;
  }
  const features: BackendInfo['features'] = {};
  if (provider === 'wasm') {
    features.simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT');
    // TF.js switches WASM threads off in Node (tensorflow/tfjs#3830): the WASM backend is one core here.
    features.threads = tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT');
  }
  return { requested, provider, tfBackend, versions, features, ...(adapter ? { adapter } : {}), notes: [...notes], warnings: [...warnings] };
}
