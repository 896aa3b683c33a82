// Runs Ticket Lab's own WGSL compute shaders inside TF.js's WebGPU backend: same device, same
// command stream, tensors bound where TF.js keeps them. Unlike TF.js's own programs, a dispatch
// may write several tensors and may write in place (optimiser state), and the pipeline is looked
// up by a fixed key instead of a shader key rebuilt from shapes on every call.
import type { TensorInfo } from '@tensorflow/tfjs';

/** The parts of TF.js's WebGPUBackend used here (internal fields, not in its public typings). */
interface WebGpuBackendInternals {
  device: GPUDeviceLike;
  tensorMap: { get(dataId: object): { resource: unknown; values: unknown } | undefined };
  commandEncoder: { beginComputePass(descriptor: object): ComputePassLike } | null;
  computePassEncoder: ComputePassLike | null;
  dispatchCountInPass: number;
  commandQueueOwnedIds: WeakSet<object>;
  uploadToGPU(dataId: object): void;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  makeUniforms(uniforms: Array<{ type: 'float32' | 'int32' | 'uint32'; data: number[] }>): { buffer: unknown; offset: number; size: number };
  makeTensorInfo(shape: number[], dtype: string): TensorInfo;
  disposeData(dataId: object): boolean;
}
interface GPUDeviceLike {
  createShaderModule(descriptor: { code: string }): unknown;
  createComputePipeline(descriptor: object): { getBindGroupLayout(index: number): unknown };
  createBindGroup(descriptor: object): unknown;
}
interface ComputePassLike {
  setPipeline(pipeline: unknown): void;
  setBindGroup(index: number, group: unknown): void;
  dispatchWorkgroups(x: number, y?: number, z?: number): void;
}

/** TF.js submits its queued work every this many dispatches (its WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE default). */
const SUBMIT_EVERY = 15;
/** WebGPU's guaranteed maximum workgroups per dimension. */
export const MAX_WORKGROUPS_PER_DIMENSION = 65_535;

export interface WgslKernel {
  /** Unique per distinct shader text: the pipeline cache key. */
  key: string;
  code: string;
}

export interface WgslBinding {
  tensor: TensorInfo;
  /** 'read_write' marks the tensor as changed: TF.js's CPU copy of it is dropped. */
  access: 'read' | 'read_write';
}

export type WgslUniform = { type: 'float32' | 'int32' | 'uint32'; value: number };

const pipelines = new WeakMap<object, Map<string, { getBindGroupLayout(index: number): unknown }>>();

function pipelineFor(backend: WebGpuBackendInternals, kernel: WgslKernel) {
  let cache = pipelines.get(backend);
  if (!cache) {
    cache = new Map();
    pipelines.set(backend, cache);
  }
  let pipeline = cache.get(kernel.key);
  if (!pipeline) {
    const module = backend.device.createShaderModule({ code: kernel.code });
    pipeline = backend.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
    cache.set(kernel.key, pipeline);
  }
  return pipeline;
}

/** A flat 1-D range of `count` invocations as a dispatch grid: x first, y when x would overflow. */
export function flatGrid(count: number, workgroupSize: number): [number, number, number] {
  const groups = Math.max(1, Math.ceil(count / workgroupSize));
  if (groups <= MAX_WORKGROUPS_PER_DIMENSION) return [groups, 1, 1];
  return [MAX_WORKGROUPS_PER_DIMENSION, Math.ceil(groups / MAX_WORKGROUPS_PER_DIMENSION), 1];
}

/**
 * Encodes one dispatch of `kernel` into TF.js's current compute pass. Bindings are numbered in
 * order, the uniform struct (if any) takes the binding after them.
 */
export function dispatchWgsl(backendObject: unknown, kernel: WgslKernel, bindings: WgslBinding[], uniforms: WgslUniform[], grid: [number, number, number]): void {
  const backend = backendObject as WebGpuBackendInternals;
  const pipeline = pipelineFor(backend, kernel);
  const entries: Array<{ binding: number; resource: unknown }> = bindings.map((b, i) => {
    backend.uploadToGPU(b.tensor.dataId);
    const data = backend.tensorMap.get(b.tensor.dataId)!;
    return { binding: i, resource: { buffer: data.resource } };
  });
  if (uniforms.length > 0) {
    entries.push({ binding: bindings.length, resource: backend.makeUniforms(uniforms.map((u) => ({ type: u.type, data: [u.value] }))) });
  }
  const group = backend.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
  for (const b of bindings) {
    backend.commandQueueOwnedIds.add(b.tensor.dataId);
    // A read caches the values on the CPU; after an in-place write that copy is stale.
    if (b.access === 'read_write') backend.tensorMap.get(b.tensor.dataId)!.values = null;
  }
  backend.ensureCommandEncoderReady();
  backend.computePassEncoder ??= backend.commandEncoder!.beginComputePass({});
  backend.computePassEncoder.setPipeline(pipeline);
  backend.computePassEncoder.setBindGroup(0, group);
  backend.computePassEncoder.dispatchWorkgroups(grid[0], grid[1], grid[2]);
  backend.dispatchCountInPass += 1;
  if (backend.dispatchCountInPass >= SUBMIT_EVERY) {
    backend.endComputePassEncoder();
    backend.submitQueue();
  }
}

/** A new, uninitialised float32 tensor on the WebGPU backend, for a kernel to fill. */
export function makeWebGpuOutput(backendObject: unknown, shape: number[], dtype: 'float32' | 'int32' = 'float32'): TensorInfo {
  return (backendObject as WebGpuBackendInternals).makeTensorInfo(shape, dtype);
}

/**
 * Releases a tensor made with makeWebGpuOutput that the kernel does not return (a scratch buffer).
 * Safe right after the dispatches that use it: TF.js holds the buffer until its queued work is submitted.
 */
export function disposeWebGpuTensor(backendObject: unknown, tensor: TensorInfo): void {
  (backendObject as WebGpuBackendInternals).disposeData(tensor.dataId);
}
