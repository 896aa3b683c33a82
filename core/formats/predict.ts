// Running an imported file's network on inputs a user gives (`ticket-lab predict`): the inputs in the
// writing framework's layout, the logits as TF.js computes them with the converted weights.
import * as tf from '@tensorflow/tfjs';
import { InvalidRequestError } from '../api/errors';
import { MaskedNetwork } from '../models/network';
import { denseMasks } from '../pruning/imp';
import type { FileTensor } from './model-format';
import type { WeightLayout, ZooMatch } from './zoo-match';

/**
 * The inputs as an NHWC batch for a network taking [h, w, c]. Accepted: [n, h·w·c] (flat, in the
 * writing framework's order), [n, c, h, w] for PyTorch layouts, [n, h, w, c] for TF.js's, and
 * [n, h, w] when c is 1.
 */
export function modelInput(x: FileTensor, [h, w, c]: readonly [number, number, number], layout: WeightLayout, path: string): { values: Float32Array; count: number } {
  const [n, ...rest] = x.shape;
  const per = h * w * c;
  if (n === undefined || rest.reduce((a, b) => a * b, 1) !== per) {
    throw new InvalidRequestError(`${path}: inputs of shape [${x.shape.join(', ')}] do not fit the network's ${layout === 'pytorch' ? `[n, ${c}, ${h}, ${w}]` : `[n, ${h}, ${w}, ${c}]`} (or [n, ${per}]).`);
  }
  const channelsFirst = layout === 'pytorch' && c > 1 && !(rest.length === 3 && rest[2] === c && rest[0] === h);
  if (!channelsFirst) return { values: x.values, count: n };
  // (c, h, w) per example → (h, w, c).
  const out = new Float32Array(x.values.length);
  for (let i = 0; i < n; i++) {
    for (let ch = 0; ch < c; ch++) for (let p = 0; p < h * w; p++) out[i * per + p * c + ch] = x.values[i * per + ch * h * w + p]!;
  }
  return { values: out, count: n };
}

/** The network's logits (eval mode: BatchNorm on its running statistics), [n, classes]. */
export function predictLogits(match: ZooMatch, input: { values: Float32Array; count: number }): number[][] {
  const [h, w, c] = match.inputShape;
  const net = new MaskedNetwork(match.arch, match.specs, match.weights, denseMasks(match.specs));
  try {
    const logits = tf.tidy(() => net.forward(tf.tensor4d(input.values, [input.count, h, w, c])));
    const values = logits.arraySync();
    logits.dispose();
    return values;
  } finally {
    net.dispose();
  }
}
