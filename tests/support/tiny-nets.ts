// Small architectures for tests that need a conv net but not a zoo model's cost.
import { type Architecture, architecture } from '../../core/models/architectures';

/** One 3×3 conv with 4 filters and a max-pool before a dense output: TF.js has no gradient of Conv2DBackpropFilter or MaxPoolGrad. */
export const tinyConv: Architecture = {
  ...architecture('conv-2'),
  id: 'tiny-conv',
  layers: [
    { kind: 'conv2d', name: 'conv1', filters: 4, kernelSize: 3, activation: 'relu', role: 'conv' },
    { kind: 'maxpool', size: 2 },
    { kind: 'flatten' },
    { kind: 'dense', name: 'fc1', units: 10, activation: 'linear', role: 'output' },
  ],
};
