// Prepared WGSL dispatches inside TF.js's WebGPU backend, for the step engines. Each kernel is
// prepared once: pipeline, bind group and a uniform buffer of its fixed sizes are made up front, so
// running it only records a dispatch (about 3.5 µs of host time measured on the 2-core VM, against
// about 100 µs for a stock TF.js op, whose shader key, uniforms and bind group are rebuilt every
// call). Dispatches go into TF.js's own command encoder, so they stay ordered with any TF.js op in
// between.
//
// Values that change every step (optimiser constants, batch row ids, a batch's pixels) are written
// with queue.writeBuffer into persistent buffers, right after submitting what is queued (flush):
// writeBuffer takes effect at once in queue order, so nothing recorded earlier but not yet
// submitted may read them.
import * as tf from '@tensorflow/tfjs';
import { InternalError, InvalidRequestError } from '../../api/errors';

// GPUBufferUsage flags (WebGPU spec values; the globals exist only after Dawn loads).
export const STORAGE = 0x80;
export const UNIFORM = 0x40;
export const COPY_DST = 0x08;

export interface GpuBuffer {
  destroy(): void;
  getMappedRange(): ArrayBuffer;
  unmap(): void;
}
interface GpuDevice {
  createShaderModule(d: { code: string }): unknown;
  createComputePipeline(d: object): { getBindGroupLayout(i: number): unknown };
  createBindGroup(d: object): unknown;
  createBuffer(d: { size: number; usage: number; mappedAtCreation?: boolean }): GpuBuffer;
  limits: { maxStorageBufferBindingSize: number };
  queue: { writeBuffer(buffer: GpuBuffer, offset: number, data: ArrayBufferView): void; onSubmittedWorkDone(): Promise<void> };
  addEventListener(type: 'uncapturederror', listener: (event: { error?: { message?: string } }) => void): void;
  removeEventListener(type: 'uncapturederror', listener: (event: { error?: { message?: string } }) => void): void;
}
interface Pass {
  setPipeline(p: unknown): void;
  setBindGroup(i: number, g: unknown): void;
  dispatchWorkgroups(x: number, y?: number, z?: number): void;
}
interface WebGpuBackendInternals {
  device: GpuDevice;
  tensorMap: { get(dataId: object): { resource: unknown; values: unknown } };
  commandEncoder: { beginComputePass(d: object): Pass } | null;
  computePassEncoder: Pass | null;
  uploadToGPU(dataId: object): void;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

/** A storage binding: a TF.js tensor (written or only read) or a buffer of the dispatcher's own. */
export type Binding = { tensor: tf.Tensor; write: boolean } | { buffer: GpuBuffer };

export interface Prepared {
  pipeline: unknown;
  group: unknown;
  grid: [number, number, number];
  /** TF.js's records of the tensors this dispatch writes: their CPU-side copies go stale. */
  written: Array<{ values: unknown }>;
}

export const MAX_GROUPS = 65_535;

/** A flat 1-D range of `count` invocations as a dispatch grid: x first, y when x would overflow. */
export function flatGrid(count: number, size: number): [number, number, number] {
  const groups = Math.max(1, Math.ceil(count / size));
  return groups <= MAX_GROUPS ? [groups, 1, 1] : [MAX_GROUPS, Math.ceil(groups / MAX_GROUPS), 1];
}

/** WGSL: the flat index of an invocation over a grid that spills from x into y (see flatGrid). */
export const FLAT = (size: number) => `gid.x + gid.y * nwg.x * ${size}u`;

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

type GpuPipeline = { getBindGroupLayout(i: number): unknown };

/**
 * Compiled pipelines per device, by WGSL source: every engine of a run (IMP's levels, a stack's
 * members, its evaluations) bakes the same shapes into the same shaders, and compiling them again
 * is most of an engine's start (seconds on a software adapter). A pipeline with layout 'auto' holds
 * no buffers, so sharing it between engines is safe; the cache goes with the device.
 */
const compiled = new WeakMap<object, Map<string, GpuPipeline>>();

export class WebGpuDispatcher {
  private readonly backend = tf.backend() as unknown as WebGpuBackendInternals;
  readonly device: GpuDevice = this.backend.device;
  private readonly pipelines = new Map<string, GpuPipeline>();
  private readonly owned: GpuBuffer[] = [];
  // WebGPU reports invalid shaders and commands asynchronously and otherwise carries on, so a
  // broken kernel would train on garbage without a word: collect the errors and fail on them.
  private readonly errors: string[] = [];
  private readonly onError = (event: { error?: { message?: string } }) => {
    this.errors.push((event.error?.message ?? 'unknown WebGPU error').split('\n')[0]!);
  };
  private previousWork: Promise<void> = Promise.resolve();

  constructor() {
    this.device.addEventListener('uncapturederror', this.onError);
  }

  assertHealthy(): void {
    const { errors } = this;
    if (errors.length > 0) throw new InternalError(`The GPU reported an error, so this run's results cannot be trusted: ${errors[0]}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}.`);
  }

  private pipeline(key: string, code: () => string): GpuPipeline {
    let p = this.pipelines.get(key);
    if (!p) {
      let byCode = compiled.get(this.device);
      if (!byCode) compiled.set(this.device, (byCode = new Map()));
      const source = code();
      p = byCode.get(source);
      if (!p) {
        p = this.device.createComputePipeline({ layout: 'auto', compute: { module: this.device.createShaderModule({ code: source }), entryPoint: 'main' } });
        byCode.set(source, p);
      }
      this.pipelines.set(key, p);
    }
    return p;
  }

  /** A buffer the dispatcher owns (destroyed with it), filled with `contents` if given. */
  buffer(size: number, usage: number, contents?: ArrayBufferView): GpuBuffer {
    const limit = this.device.limits.maxStorageBufferBindingSize;
    if (usage & STORAGE && size > limit) {
      // Past the limit WebGPU would only report a validation error later, mid-training.
      throw new InvalidRequestError(`One tensor of this training step needs ${mib(size)}; this GPU binds at most ${mib(limit)} per tensor. Use a smaller --batch.`);
    }
    const b = this.device.createBuffer({ size: Math.max(16, Math.ceil(size / 16) * 16), usage, mappedAtCreation: contents !== undefined });
    if (contents) {
      new Uint8Array(b.getMappedRange()).set(new Uint8Array(contents.buffer, contents.byteOffset, contents.byteLength));
      b.unmap();
    }
    this.owned.push(b);
    return b;
  }

  /** A uniform buffer of u32 values (a kernel's fixed sizes). */
  uniforms(values: number[]): GpuBuffer {
    return this.buffer(4 * values.length, UNIFORM, Uint32Array.from(values));
  }

  private gpuBuffer(t: tf.Tensor) {
    this.backend.uploadToGPU(t.dataId);
    return this.backend.tensorMap.get(t.dataId).resource;
  }

  /** Pipeline (cached by `key`, which must name the shader text) and bind group of one dispatch. */
  prepare(key: string, code: () => string, bindings: Binding[], grid: [number, number, number]): Prepared {
    const p = this.pipeline(key, code);
    const entries = bindings.map((b, i) => ({ binding: i, resource: { buffer: 'tensor' in b ? this.gpuBuffer(b.tensor) : b.buffer } }));
    const written = bindings.filter((b): b is { tensor: tf.Tensor; write: boolean } => 'tensor' in b && b.write).map((b) => this.backend.tensorMap.get(b.tensor.dataId));
    return { pipeline: p, group: this.device.createBindGroup({ layout: p.getBindGroupLayout(0), entries }), grid, written };
  }

  /** Records one prepared dispatch into TF.js's current compute pass. */
  run(d: Prepared): void {
    const { backend } = this;
    backend.ensureCommandEncoderReady();
    backend.computePassEncoder ??= backend.commandEncoder!.beginComputePass({});
    const pass = backend.computePassEncoder;
    pass.setPipeline(d.pipeline);
    pass.setBindGroup(0, d.group);
    pass.dispatchWorkgroups(d.grid[0], d.grid[1], d.grid[2]);
    for (const w of d.written) w.values = null;
  }

  /** Submits what is queued. */
  flush(): void {
    if (this.backend.commandEncoder) {
      this.backend.endComputePassEncoder();
      this.backend.submitQueue();
    }
  }

  /** Writes into a buffer after submitting what is queued, so only later dispatches see the new contents. */
  write(target: GpuBuffer, data: ArrayBufferView): void {
    this.flush();
    this.device.queue.writeBuffer(target, 0, data);
  }

  /** Submits, and waits until the GPU is at most one such call behind, so the host never runs far ahead. */
  async settle(): Promise<void> {
    this.flush();
    const submitted = this.device.queue.onSubmittedWorkDone();
    await this.previousWork;
    this.previousWork = submitted;
    this.assertHealthy();
  }

  dispose(): void {
    this.device.removeEventListener('uncapturederror', this.onError);
    this.flush();
    for (const b of this.owned) b.destroy();
    this.owned.length = 0;
  }
}
