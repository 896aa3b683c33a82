// Ticket Lab's own kernels in TF.js's kernel registry (tensorflow/tfjs kernel_registry.ts): one
// name each, an implementation per backend that has one, registered once. Callers check
// `hasKernel` and fall back to a composite of stock ops elsewhere (tfjs-node).
import * as tf from '@tensorflow/tfjs';

export type KernelBackendName = 'cpu' | 'wasm' | 'webgpu';

/** What TF.js hands a kernel: its inputs by name, the backend object, the attributes. */
export type KernelArgs = Parameters<tf.KernelFunc>[0];
export type KernelImplementation = (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[];

export interface CustomKernel {
  name: string;
  implementations: Partial<Record<KernelBackendName, KernelImplementation>>;
}

/** Registers each implementation unless that name is already registered for that backend. */
export function registerKernels(kernels: readonly CustomKernel[]): void {
  for (const kernel of kernels) {
    for (const [backendName, kernelFunc] of Object.entries(kernel.implementations)) {
      if (tf.getKernel(kernel.name, backendName) === undefined) {
        tf.registerKernel({ kernelName: kernel.name, backendName, kernelFunc: kernelFunc as tf.KernelFunc });
      }
    }
  }
}

/** Whether the current backend has a kernel of this name. */
export function hasKernel(name: string): boolean {
  return tf.getKernel(name, tf.getBackend()) !== undefined;
}

/** The values array the JS cpu backend keeps for a tensor: its kernels read and write it directly. */
export function cpuValues(backend: unknown, tensor: tf.TensorInfo): Float32Array | Int32Array {
  const data = (backend as { data: { get(dataId: object): { values: Float32Array | Int32Array } | undefined } }).data.get(tensor.dataId);
  if (!data) throw new Error('tensor is not on the cpu backend');
  return data.values;
}

/** Runs a kernel that writes into its inputs and returns nothing. */
export function runInPlace(name: string, inputs: tf.NamedTensorMap, attrs: Record<string, unknown>): void {
  tf.engine().runKernel(name, inputs, attrs as unknown as tf.NamedAttrMap);
}
