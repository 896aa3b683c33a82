// A training step engine for conv nets on WebGPU: Conv-2/4/6 and the CIFAR ResNets, one network.
// The step is written out by hand (forward, softmax cross-entropy, backward, masked update) as a
// fixed list of prepared dispatches (conv-kernels-webgpu.ts), recorded into one compute pass per
// step: about 250 dispatches for ResNet-20 at a few µs of host time each, where TF.js autodiff
// spends 1,200 stock ops at about 100 µs each (docs/results/gpu.md).
//
// The engine trains the MaskedNetwork's own variables in place (weights, BatchNorm running
// statistics), so evaluation, checkpoints and the early-stop copy read them as TF.js tensors. Masks
// are folded into the update: pruned weights are exactly 0 after every update, so the forward pass
// uses the weights as they are, and the gradient of a pruned weight is never applied, which is
// what masking in the forward pass gives with autodiff.
import * as tf from '@tensorflow/tfjs';
import type { Architecture, LayerSpec } from '../../models/architectures';
import { BATCHNORM_EPSILON, BATCHNORM_MOMENTUM, type MaskedNetwork } from '../../models/network';
import type { OptimizerConfig } from '../optimizers';
import {
  CHANNEL_CHUNK,
  type ConvGeometry,
  type Residual,
  batchNormApplyWgsl,
  batchNormBackwardWgsl,
  batchNormStatsWgsl,
  channelGradFinishWgsl,
  channelGradSumsWgsl,
  channelMomentsWgsl,
  convGeometry,
  convProductWgsl,
  filterGradSplits,
  forwardSplits,
  geometryKey,
  globalAvgPoolGradWgsl,
  globalAvgPoolWgsl,
  maskedUpdateWgsl,
  maxPoolGradWgsl,
  maxPoolWgsl,
  productGrid,
  shortcutGradWgsl,
  splitSumWgsl,
} from './conv-kernels-webgpu';
import { softmaxXentWgsl, zeroWgsl } from './kernels-webgpu';
import { type Binding, COPY_DST, type GpuBuffer, type Prepared, STORAGE, UNIFORM, WebGpuDispatcher, flatGrid } from './webgpu-prepared';

/** Channels a per-channel reduction takes (one workgroup's threads). */
const MAX_CHANNELS = 256;

/** Why the engine cannot run an architecture, or null if it can. */
export function convEngineUnsupported(arch: Architecture): string | null {
  const check = (layers: readonly LayerSpec[]): string | null => {
    for (const layer of layers) {
      if (layer.kind === 'conv2d') {
        if (layer.kernelSize % 2 === 0) return `${layer.name}: an even kernel size`;
        // The kernels pad floor(k/2) on every side (conv-kernels-webgpu.ts convGeometry).
        if (layer.padding !== undefined && layer.padding !== Math.floor(layer.kernelSize / 2)) return `${layer.name}: padding ${layer.padding}, not ${Math.floor(layer.kernelSize / 2)}`;
        if (layer.filters > MAX_CHANNELS) return `${layer.name}: more than ${MAX_CHANNELS} filters`;
      } else if (layer.kind === 'dense') {
        if (layer.units > MAX_CHANNELS) return `${layer.name}: more than ${MAX_CHANNELS} units`;
      } else if (layer.kind === 'residual') {
        const last = layer.body[layer.body.length - 1];
        if (last?.kind !== 'batchnorm') return `${layer.name}: a block whose body does not end in BatchNorm`;
        // The block's ReLU is fused into its last BatchNorms (body and projection), which then have none of their own.
        const projected = layer.shortcut.kind === 'projection' ? layer.shortcut.layers[layer.shortcut.layers.length - 1] : undefined;
        if (last.activation === 'relu' || (projected?.kind === 'batchnorm' && projected.activation === 'relu')) return `${layer.name}: a ReLU before the block's sum`;
        const inner = check(layer.body) ?? (layer.shortcut.kind === 'projection' ? check(layer.shortcut.layers) : null);
        if (inner) return inner;
        if (layer.shortcut.kind === 'projection' && layer.shortcut.layers[layer.shortcut.layers.length - 1]?.kind !== 'batchnorm') {
          return `${layer.name}: a projection shortcut that does not end in BatchNorm`;
        }
      }
    }
    return null;
  };
  return check(arch.layers);
}

/** An activation: a buffer of batch × h × w × c floats (NHWC). */
interface Act {
  buf: GpuBuffer;
  h: number;
  w: number;
  c: number;
}

/** Where a backward pass writes the gradient at a layer's input, when its caller provides the buffer. */
interface GradTarget {
  buf: GpuBuffer;
  accumulate: boolean;
}

interface Node {
  /** Prepares the node's backward dispatches; returns the gradient at its input (null when not needed). */
  backward(gOut: GpuBuffer, needInput: boolean, target?: GradTarget): GpuBuffer | null;
  /** BatchNorm: the backward with the gate given (a projection shortcut's BatchNorm is gated by its block's ReLU). */
  gatedBackward?(gOut: GpuBuffer, gate: GpuBuffer | null): GpuBuffer;
}

export class ConvStepEngine {
  private readonly gpu = new WebGpuDispatcher();
  private readonly forwardDispatches: Prepared[] = [];
  private readonly backwardDispatches: Prepared[] = [];
  private readonly updateDispatches: Prepared[] = [];
  private x!: GpuBuffer;
  private labels!: GpuBuffer;
  private stepConstants!: GpuBuffer;
  private readonly lossSum: tf.Tensor;
  private zeroLoss!: Prepared;
  private readonly grads = new Map<string, { buf: GpuBuffer; parts: number }>();
  private readonly pixels: number;
  private adamSteps = 0;
  private stepsSinceLoss = 0;

  constructor(
    private readonly net: MaskedNetwork,
    inputShape: readonly [number, number, number],
    numClasses: number,
    private readonly batch: number,
    private readonly optimizer: OptimizerConfig,
  ) {
    const [h, w, c] = inputShape;
    this.pixels = h * w * c;
    this.lossSum = tf.zeros([1]);
    try {
      const reason = convEngineUnsupported(net.arch);
      if (reason) throw new Error(`the conv step engine cannot run ${net.arch.id}: ${reason}`);
      this.build(inputShape, numClasses);
    } catch (error) {
      this.dispose();
      throw error;
    }
  }

  private build([h, w, c]: readonly [number, number, number], numClasses: number): void {
    const { gpu, batch } = this;
    this.x = gpu.buffer(4 * batch * this.pixels, STORAGE | COPY_DST);
    this.labels = gpu.buffer(4 * batch, STORAGE | COPY_DST);
    this.stepConstants = gpu.buffer(32, UNIFORM | COPY_DST);
    this.zeroLoss = gpu.prepare('zero', zeroWgsl, [{ tensor: this.lossSum, write: true }, { buffer: gpu.uniforms([1]) }], [1, 1, 1]);

    const nodes: Node[] = [];
    const logits = this.forwardLayers(this.net.arch.layers, '', { buf: this.x, h, w, c }, nodes);
    if (logits.c !== numClasses || logits.h !== 1 || logits.w !== 1) throw new Error(`${this.net.arch.id} ends in ${logits.h}×${logits.w}×${logits.c}, not ${numClasses} logits`);
    const dLogits = this.activation(1, 1, numClasses);
    this.forwardDispatches.push(
      gpu.prepare(
        'softmax-xent',
        softmaxXentWgsl,
        [{ buffer: logits.buf }, { buffer: this.labels }, { buffer: dLogits }, { tensor: this.lossSum, write: true }, { buffer: gpu.uniforms([batch, numClasses]) }],
        [1, 1, 1],
      ),
    );
    this.backwardLayers(nodes, dLogits, false);
    this.prepareUpdates();
  }

  /** One training step on a batch (normalised images, NHWC, and labels) at the given learning rate. */
  step(images: Float32Array, labels: Int32Array, learningRate: number): void {
    if (images.length !== this.batch * this.pixels || labels.length !== this.batch) throw new Error(`the engine takes batches of ${this.batch}`);
    const { gpu, optimizer } = this;
    gpu.write(this.x, images);
    gpu.device.queue.writeBuffer(this.labels, 0, labels);
    let constants: number[];
    if (optimizer.name === 'adam') {
      this.adamSteps += 1;
      const t = this.adamSteps;
      constants = [learningRate / (1 - optimizer.beta1 ** t), 1 / Math.sqrt(1 - optimizer.beta2 ** t), optimizer.beta1, 1 - optimizer.beta1, optimizer.beta2, 1 - optimizer.beta2, optimizer.epsilon, optimizer.weightDecay];
    } else {
      constants = [learningRate, optimizer.momentum, optimizer.weightDecay, 0, 0, 0, 0, 0];
    }
    gpu.device.queue.writeBuffer(this.stepConstants, 0, Float32Array.from(constants));
    for (const d of this.forwardDispatches) gpu.run(d);
    for (const d of this.backwardDispatches) gpu.run(d);
    for (const d of this.updateDispatches) gpu.run(d);
    this.stepsSinceLoss += 1;
  }

  /** The mean training loss of the steps since the last call (waits for the GPU), or null if none ran. */
  async takeMeanLoss(): Promise<number | null> {
    if (this.stepsSinceLoss === 0) return null;
    this.gpu.flush();
    const sum = (await this.lossSum.data())[0]!;
    this.gpu.assertHealthy();
    const mean = sum / this.stepsSinceLoss;
    this.stepsSinceLoss = 0;
    this.gpu.run(this.zeroLoss);
    return mean;
  }

  /** Submits what is queued and waits until the GPU is at most one such call behind. */
  settle(): Promise<void> {
    return this.gpu.settle();
  }

  dispose(): void {
    this.gpu.dispose();
    this.lossSum.dispose();
  }

  private activation(h: number, w: number, c: number): GpuBuffer {
    return this.gpu.buffer(4 * this.batch * h * w * c, STORAGE);
  }

  private param(name: string): tf.Tensor {
    const t = this.net.params.get(name) ?? this.net.state.get(name);
    if (!t) throw new Error(`the network has no ${name}`);
    return t;
  }

  private gradient(name: string, parts: number): GpuBuffer {
    const size = this.param(name).size;
    const buf = this.gpu.buffer(4 * size * parts, STORAGE);
    this.grads.set(name, { buf, parts });
    return buf;
  }

  private forwardLayers(layers: readonly LayerSpec[], prefix: string, input: Act, nodes: Node[], residual?: { kind: Residual['kind']; act: Act; stride: number }): Act {
    let act = input;
    layers.forEach((layer, index) => {
      const last = index === layers.length - 1;
      switch (layer.kind) {
        case 'conv2d':
          act = this.conv(`${prefix}${layer.name}`, act, layer.kernelSize, layer.stride ?? 1, layer.filters, layer.bias !== false, layer.activation === 'relu', nodes);
          break;
        case 'dense':
          act = this.conv(`${prefix}${layer.name}`, { ...act, h: 1, w: 1, c: act.h * act.w * act.c }, 1, 1, this.param(`${prefix}${layer.name}.bias`).size, true, layer.activation === 'relu', nodes);
          break;
        case 'batchnorm':
          act = this.batchNorm(`${prefix}${layer.name}`, act, layer.activation === 'relu', last ? residual : undefined, nodes);
          break;
        case 'residual':
          act = this.block(layer, `${prefix}${layer.name}.`, act, nodes);
          break;
        case 'maxpool':
          act = this.maxPool(act, layer.size, nodes);
          break;
        case 'globalavgpool':
          act = this.globalAvgPool(act, nodes);
          break;
        case 'flatten':
          act = { ...act, h: 1, w: 1, c: act.h * act.w * act.c };
          break;
      }
    });
    return act;
  }

  /** Runs the nodes' backward passes from the last; the first node writes into `target` if given. */
  private backwardLayers(nodes: Node[], gOut: GpuBuffer, needInput: boolean, target?: GradTarget): GpuBuffer | null {
    let g: GpuBuffer | null = gOut;
    for (let i = nodes.length - 1; i >= 0; i--) {
      const first = i === 0;
      g = nodes[i]!.backward(g!, first ? needInput : true, first ? target : undefined);
    }
    return g;
  }

  private conv(name: string, input: Act, kernel: number, stride: number, filters: number, bias: boolean, relu: boolean, nodes: Node[]): Act {
    const { gpu, batch } = this;
    const g: ConvGeometry = convGeometry(batch, input.h, input.w, input.c, kernel, stride, filters);
    const output: Act = { buf: this.activation(g.outHeight, g.outWidth, filters), h: g.outHeight, w: g.outWidth, c: filters };
    const weights = this.param(`${name}.kernel`);
    const key = geometryKey(g);
    const split = forwardSplits(g);
    if (split) {
      // Too few output tiles to fill the GPU (a dense layer on a small batch): split the reduction, then sum.
      const rows = batch * g.outHeight * g.outWidth;
      const partial = gpu.buffer(4 * split.splits * rows * filters, STORAGE);
      this.forwardDispatches.push(
        gpu.prepare(`conv-fwd-${key}-split${split.chunk}`, () => convProductWgsl('forward', g, { chunk: split.chunk }), [{ buffer: input.buf }, { tensor: weights, write: false }, { buffer: partial }], productGrid('forward', g, split.splits)),
      );
      const sum: Binding[] = [{ buffer: partial }, { buffer: output.buf }];
      if (bias) sum.push({ tensor: this.param(`${name}.bias`), write: false });
      this.forwardDispatches.push(gpu.prepare(`split-sum-${rows}x${filters}x${split.splits}-${bias}-${relu}`, () => splitSumWgsl(rows, filters, split.splits, bias, relu), sum, flatGrid(rows * filters, 256)));
    } else {
      const fwdBindings: Binding[] = [{ buffer: input.buf }, { tensor: weights, write: false }, { buffer: output.buf }];
      if (bias) fwdBindings.push({ tensor: this.param(`${name}.bias`), write: false });
      this.forwardDispatches.push(gpu.prepare(`conv-fwd-${key}-${bias}-${relu}`, () => convProductWgsl('forward', g, { bias, relu }), fwdBindings, productGrid('forward', g)));
    }

    nodes.push({
      backward: (gOut, needInput, target) => {
        const rows = batch * g.outHeight * g.outWidth;
        if (bias || relu) {
          // ReLU's gate applied to dy in place, and the bias gradient Σ dy per channel.
          const chunks = Math.ceil(rows / CHANNEL_CHUNK);
          const partial = gpu.buffer(4 * chunks * filters, STORAGE);
          const sums: Binding[] = [{ buffer: gOut }];
          if (relu) sums.push({ buffer: output.buf });
          sums.push({ buffer: partial });
          const options = { gate: relu, batchNorm: false, writeGated: relu };
          this.backwardDispatches.push(gpu.prepare(`grad-sums-${rows}x${filters}-${relu}`, () => channelGradSumsWgsl(rows, filters, options), sums, [chunks, 1, 1]));
          if (bias) {
            const gBias = this.gradient(`${name}.bias`, 1);
            this.backwardDispatches.push(gpu.prepare(`grad-finish-${chunks}x${filters}-bias`, () => channelGradFinishWgsl(chunks, filters, false), [{ buffer: partial }, { buffer: gBias }], [Math.ceil(filters / 64), 1, 1]));
          }
        }
        const { chunk, splits } = filterGradSplits(g);
        const gKernel = this.gradient(`${name}.kernel`, splits);
        this.backwardDispatches.push(
          gpu.prepare(`conv-dw-${key}-${chunk}`, () => convProductWgsl('filterGrad', g, { chunk }), [{ buffer: input.buf }, { buffer: gOut }, { buffer: gKernel }], productGrid('filterGrad', g, splits)),
        );
        if (!needInput) return null;
        const dx = target ?? { buf: this.activation(input.h, input.w, input.c), accumulate: false };
        this.backwardDispatches.push(
          gpu.prepare(`conv-dx-${key}-${dx.accumulate}`, () => convProductWgsl('inputGrad', g, { accumulate: dx.accumulate }), [{ buffer: gOut }, { tensor: weights, write: false }, { buffer: dx.buf }], productGrid('inputGrad', g)),
        );
        return dx.buf;
      },
    });
    return output;
  }

  private batchNorm(name: string, input: Act, relu: boolean, residual: { kind: Residual['kind']; act: Act; stride: number } | undefined, nodes: Node[]): Act {
    const { gpu, batch } = this;
    const rows = batch * input.h * input.w;
    const channels = input.c;
    const chunks = Math.ceil(rows / CHANNEL_CHUNK);
    const output: Act = { ...input, buf: this.activation(input.h, input.w, channels) };
    const stats = gpu.buffer(8 * channels, STORAGE);
    const moments = gpu.buffer(12 * chunks * channels, STORAGE);
    const gamma = this.param(`${name}.gamma`);
    const beta = this.param(`${name}.beta`);
    this.forwardDispatches.push(gpu.prepare(`bn-moments-${rows}x${channels}`, () => channelMomentsWgsl(rows, channels), [{ buffer: input.buf }, { buffer: moments }], [chunks, 1, 1]));
    this.forwardDispatches.push(
      gpu.prepare(
        `bn-stats-${chunks}x${channels}`,
        () => batchNormStatsWgsl(chunks, channels, BATCHNORM_EPSILON, BATCHNORM_MOMENTUM),
        [{ buffer: moments }, { buffer: stats }, { tensor: this.param(`${name}.runningMean`), write: true }, { tensor: this.param(`${name}.runningVar`), write: true }],
        [Math.ceil(channels / 64), 1, 1],
      ),
    );
    let spec: Residual = { kind: 'none' };
    if (residual?.kind === 'add') spec = { kind: 'add' };
    else if (residual?.kind === 'subsample') spec = { kind: 'subsample', height: residual.act.h, width: residual.act.w, channels: residual.act.c, stride: residual.stride };
    const applyRelu = relu || residual !== undefined;
    const applyBindings: Binding[] = [{ buffer: input.buf }, { buffer: stats }, { tensor: gamma, write: false }, { tensor: beta, write: false }, { buffer: output.buf }];
    if (residual) applyBindings.push({ buffer: residual.act.buf });
    const residualKey = spec.kind === 'subsample' ? `sub${spec.height}x${spec.width}x${spec.channels}s${spec.stride}` : spec.kind;
    this.forwardDispatches.push(
      gpu.prepare(`bn-apply-${rows}x${channels}x${input.h}x${input.w}-${residualKey}-${applyRelu}`, () => batchNormApplyWgsl(rows, channels, input.h, input.w, spec, applyRelu), applyBindings, flatGrid(rows * channels, 256)),
    );

    const gradSums = gpu.buffer(8 * chunks * channels, STORAGE);
    const node: Required<Node> = {
      gatedBackward: (gOut, gate) => {
        const gBeta = this.gradient(`${name}.beta`, 1);
        const gGamma = this.gradient(`${name}.gamma`, 1);
        const gated = gate !== null;
        const sums: Binding[] = [{ buffer: gOut }];
        if (gate) sums.push({ buffer: gate });
        sums.push({ buffer: input.buf }, { buffer: stats }, { buffer: gradSums });
        this.backwardDispatches.push(
          gpu.prepare(`bn-grad-sums-${rows}x${channels}-${gated}`, () => channelGradSumsWgsl(rows, channels, { gate: gated, batchNorm: true, writeGated: false }), sums, [chunks, 1, 1]),
        );
        this.backwardDispatches.push(
          gpu.prepare(`grad-finish-${chunks}x${channels}-bn`, () => channelGradFinishWgsl(chunks, channels, true), [{ buffer: gradSums }, { buffer: gBeta }, { buffer: gGamma }], [Math.ceil(channels / 64), 1, 1]),
        );
        const dx = this.activation(input.h, input.w, channels);
        const apply: Binding[] = [{ buffer: gOut }, { buffer: input.buf }, { buffer: stats }, { tensor: gamma, write: false }, { buffer: gBeta }, { buffer: gGamma }, { buffer: dx }];
        if (gate) apply.push({ buffer: gate });
        this.backwardDispatches.push(gpu.prepare(`bn-backward-${rows}x${channels}-${gated}`, () => batchNormBackwardWgsl(rows, channels, gated), apply, flatGrid(rows * channels, 256)));
        return dx;
      },
      // Its own output gates the gradient when a ReLU follows (in a block: the block's ReLU, fused here).
      backward: (gOut) => node.gatedBackward(gOut, applyRelu ? output.buf : null),
    };
    nodes.push(node);
    return output;
  }

  private block(layer: Extract<LayerSpec, { kind: 'residual' }>, prefix: string, input: Act, nodes: Node[]): Act {
    const { gpu, batch } = this;
    const { shortcut } = layer;
    const shortcutNodes: Node[] = [];
    let residual: { kind: Residual['kind']; act: Act; stride: number };
    if (shortcut.kind === 'projection') {
      const through = this.forwardLayers(shortcut.layers, prefix, input, shortcutNodes);
      residual = { kind: 'add', act: through, stride: 1 };
    } else {
      residual = { kind: shortcut.kind === 'identity' ? 'add' : 'subsample', act: input, stride: shortcut.kind === 'identity' ? 1 : shortcut.stride };
    }
    const bodyNodes: Node[] = [];
    const output = this.forwardLayers(layer.body, prefix, input, bodyNodes, residual);

    nodes.push({
      backward: (gOut, needInput, target) => {
        // The shortcut's gradient first (written), then the body's input gradient added to it.
        const dIn = target?.buf ?? this.activation(input.h, input.w, input.c);
        if (target?.accumulate) throw new Error('a residual block cannot add to an existing gradient');
        if (shortcut.kind === 'projection') {
          const dThrough = shortcutNodes[shortcutNodes.length - 1]!.gatedBackward!(gOut, output.buf);
          // The projection's BatchNorm is its last node; the rest (the 1×1 conv) write into dIn.
          this.backwardLayers(shortcutNodes.slice(0, -1), dThrough, true, { buf: dIn, accumulate: false });
        } else {
          const stride = shortcut.kind === 'identity' ? 1 : shortcut.stride;
          const inShape = { batch, height: input.h, width: input.w, channels: input.c };
          const outShape = { height: output.h, width: output.w, channels: output.c };
          this.backwardDispatches.push(
            gpu.prepare(
              `shortcut-grad-${batch}x${input.h}x${input.w}x${input.c}-${output.h}x${output.w}x${output.c}-s${stride}`,
              () => shortcutGradWgsl(inShape, outShape, stride),
              [{ buffer: gOut }, { buffer: output.buf }, { buffer: dIn }],
              flatGrid(batch * input.h * input.w * input.c, 256),
            ),
          );
        }
        this.backwardLayers(bodyNodes, gOut, true, { buf: dIn, accumulate: true });
        return needInput ? dIn : null;
      },
    });
    return output;
  }

  private maxPool(input: Act, size: number, nodes: Node[]): Act {
    const { gpu, batch } = this;
    const oh = Math.floor(input.h / size);
    const ow = Math.floor(input.w / size);
    const output: Act = { buf: this.activation(oh, ow, input.c), h: oh, w: ow, c: input.c };
    const key = `${batch}x${input.h}x${input.w}x${input.c}-${size}`;
    this.forwardDispatches.push(gpu.prepare(`maxpool-${key}`, () => maxPoolWgsl(batch, input.h, input.w, input.c, size), [{ buffer: input.buf }, { buffer: output.buf }], flatGrid(batch * oh * ow * input.c, 256)));
    nodes.push({
      backward: (gOut, needInput, target) => {
        if (!needInput) return null;
        if (target?.accumulate) throw new Error('max pooling cannot add to an existing gradient');
        const dx = target?.buf ?? this.activation(input.h, input.w, input.c);
        this.backwardDispatches.push(
          gpu.prepare(`maxpool-grad-${key}`, () => maxPoolGradWgsl(batch, input.h, input.w, input.c, size), [{ buffer: input.buf }, { buffer: gOut }, { buffer: dx }], flatGrid(batch * input.h * input.w * input.c, 256)),
        );
        return dx;
      },
    });
    return output;
  }

  private globalAvgPool(input: Act, nodes: Node[]): Act {
    const { gpu, batch } = this;
    const pixels = input.h * input.w;
    const output: Act = { buf: this.activation(1, 1, input.c), h: 1, w: 1, c: input.c };
    const key = `${batch}x${pixels}x${input.c}`;
    this.forwardDispatches.push(gpu.prepare(`gap-${key}`, () => globalAvgPoolWgsl(batch, pixels, input.c), [{ buffer: input.buf }, { buffer: output.buf }], [Math.ceil((batch * input.c) / 64), 1, 1]));
    nodes.push({
      backward: (gOut, needInput, target) => {
        if (!needInput) return null;
        if (target?.accumulate) throw new Error('pooling cannot add to an existing gradient');
        const dx = target?.buf ?? this.activation(input.h, input.w, input.c);
        this.backwardDispatches.push(gpu.prepare(`gap-grad-${key}`, () => globalAvgPoolGradWgsl(batch, pixels, input.c), [{ buffer: gOut }, { buffer: dx }], flatGrid(batch * pixels * input.c, 256)));
        return dx;
      },
    });
    return output;
  }

  /** One masked update per trainable tensor, summing its gradient's partials. */
  private prepareUpdates(): void {
    const { gpu, optimizer } = this;
    const momentum = optimizer.name === 'sgd' && optimizer.momentum > 0;
    for (const [name, w] of this.net.params) {
      const grad = this.grads.get(name);
      if (!grad) throw new Error(`the engine computed no gradient for ${name}`);
      const mask = this.net.masks.get(name);
      const bindings: Binding[] = [{ tensor: w, write: true }, { buffer: grad.buf }];
      if (optimizer.name === 'adam') bindings.push({ buffer: gpu.buffer(4 * w.size, STORAGE) }, { buffer: gpu.buffer(4 * w.size, STORAGE) });
      else if (momentum) bindings.push({ buffer: gpu.buffer(4 * w.size, STORAGE) });
      if (mask) bindings.push({ tensor: mask, write: false });
      bindings.push({ buffer: this.stepConstants });
      const key = `update-${optimizer.name}-${w.size}-${grad.parts}-${mask !== undefined}-${momentum}`;
      this.updateDispatches.push(gpu.prepare(key, () => maskedUpdateWgsl(w.size, grad.parts, optimizer.name, mask !== undefined, momentum), bindings, flatGrid(w.size, 256)));
    }
  }
}
