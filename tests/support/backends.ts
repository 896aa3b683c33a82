// The TF.js backends tests run on: the JS reference (cpu), WASM, and WebGPU, which on a machine
// without a GPU runs on SwiftShader, the software Vulkan driver Debian's chromium ships
// (scripts/system-deps.sh installs it), so WGSL kernels are checked for correctness here and in CI.
import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { type BackendInfo, selectBackend } from '../../core/compute/backend';

// Tests switch to the cpu backend directly at times: no "use tfjs-node" banner.
tf.env().set('PROD', true);

export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
export const KERNEL_BACKENDS = ['cpu', 'wasm', 'webgpu'] as const;
export type KernelBackend = (typeof KERNEL_BACKENDS)[number];

/**
 * Switches TF.js to `backend`. WebGPU uses the machine's GPU if the Vulkan loader finds one, and
 * SwiftShader otherwise; without either the test fails and says what to install.
 */
export async function useBackend(backend: KernelBackend): Promise<BackendInfo> {
  if (backend === 'webgpu' && !process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER_ICD)) {
    // Read by the Vulkan loader when Dawn creates its instance, which happens on first use.
    process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  }
  try {
    return await selectBackend(backend);
  } catch (error) {
    if (backend === 'webgpu') {
      throw new Error(`WebGPU tests need a Vulkan driver; SwiftShader comes with Debian's chromium (bash scripts/system-deps.sh). ${(error as Error).message}`);
    }
    throw error;
  }
}
