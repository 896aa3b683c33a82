// WebGPU in Node through Dawn (the optional `webgpu` package, whose dawn.node ships inside it).
//
// TF.js's WebGPU backend registers 'webgpu' only if `navigator.gpu` exists when its module is
// evaluated, so the GPU object is installed first and the backend required after. The adapter is
// probed here too, so a run records which GPU it ran on, and a missing or software adapter is
// reported instead of TF.js quietly falling back to its CPU backend.
import { createRequire } from 'node:module';

export interface GpuAdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** The adapter is a fallback (WebGPU's term for an implementation with no real GPU behind it). */
  isFallbackAdapter: boolean;
  /** A CPU implementation of the GPU API, SwiftShader for one: correct and slow. */
  software: boolean;
  limits: { maxBufferSize: number; maxStorageBufferBindingSize: number; maxComputeWorkgroupStorageSize: number; maxComputeInvocationsPerWorkgroup: number };
}

export type WebGpuProbe = { ok: true; adapter: GpuAdapterInfo } | { ok: false; reason: string };

const requireFromHere = createRequire(__filename);

interface DawnModule {
  create(options: string[]): GpuLike;
  globals: Record<string, unknown>;
}
interface AdapterLike {
  info?: Record<string, unknown>;
  isFallbackAdapter?: boolean;
  limits: Record<string, number>;
}
interface GpuLike {
  requestAdapter(options?: { powerPreference?: string }): Promise<AdapterLike | null>;
}

let installed: GpuLike | undefined;
let probed: WebGpuProbe | undefined;

/** Not a literal, so type checking does not need the optional package; NodeNext output keeps import() (webgpu is an ES module). */
const DAWN_PACKAGE = 'webgpu';

async function installNavigatorGpu(): Promise<GpuLike> {
  if (installed) return installed;
  const dawn = (await import(DAWN_PACKAGE)) as DawnModule;
  Object.assign(globalThis, dawn.globals);
  const gpu = dawn.create([]);
  const g = globalThis as { navigator?: { gpu?: unknown } };
  // Node ≥ 21 has a navigator of its own: add to it rather than replace it.
  if (g.navigator) g.navigator.gpu = gpu;
  else g.navigator = { gpu };
  installed = gpu;
  return gpu;
}

function describeAdapter(adapter: AdapterLike): GpuAdapterInfo {
  const info = adapter.info ?? {};
  const text = (key: string) => (typeof info[key] === 'string' ? (info[key] as string) : '');
  const isFallbackAdapter = Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false);
  const architecture = text('architecture');
  const description = text('description');
  const software = isFallbackAdapter || /swiftshader|llvmpipe|lavapipe|software/i.test(`${architecture} ${description} ${text('device')}`);
  const limit = (key: string) => Number(adapter.limits[key] ?? 0);
  return {
    vendor: text('vendor'),
    architecture,
    device: text('device'),
    description,
    isFallbackAdapter,
    software,
    limits: {
      maxBufferSize: limit('maxBufferSize'),
      maxStorageBufferBindingSize: limit('maxStorageBufferBindingSize'),
      maxComputeWorkgroupStorageSize: limit('maxComputeWorkgroupStorageSize'),
      maxComputeInvocationsPerWorkgroup: limit('maxComputeInvocationsPerWorkgroup'),
    },
  };
}

/**
 * Loads Dawn, installs `navigator.gpu` and asks for the high-performance adapter. Probes once per
 * process: Dawn's instance lives as long as the process.
 */
export async function probeWebGpu(): Promise<WebGpuProbe> {
  if (probed) return probed;
  let gpu: GpuLike;
  try {
    gpu = await installNavigatorGpu();
  } catch (error) {
    const detail = (error as Error).message.split('\n')[0];
    probed = (error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' || /Cannot find (package|module) 'webgpu'/.test(detail ?? '')
      ? { ok: false, reason: 'the optional package `webgpu` (Dawn) is not installed' }
      : { ok: false, reason: `Dawn (the \`webgpu\` package) failed to load: ${detail}` };
    return probed;
  }
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  probed = adapter
    ? { ok: true, adapter: describeAdapter(adapter) }
    : {
        ok: false,
        reason:
          'Dawn found no GPU adapter: no Vulkan driver is visible (install the GPU driver and the Vulkan loader libvulkan1; ' +
          'for a software adapter in tests, point VK_ICD_FILENAMES at SwiftShader, /usr/lib/chromium/vk_swiftshader_icd.json)',
      };
  return probed;
}

/** Registers TF.js's 'webgpu' backend; call after a successful probe. */
export function loadTfWebGpuBackend(): void {
  requireFromHere('@tensorflow/tfjs-backend-webgpu');
}

/** One line naming the adapter, for progress lines and reports. */
export function adapterLabel(adapter: GpuAdapterInfo): string {
  const name = [adapter.vendor, adapter.device || adapter.architecture].filter(Boolean).join(' ');
  return `${name || 'unnamed adapter'}${adapter.software ? ' (software)' : ''}`;
}
