#!/usr/bin/env python3
"""PyTorch reference for Ticket Lab's conv section: one masked Conv-2 ticket trained eagerly, timed.

The network is the zoo's Conv-2 (core/models/architectures.ts): 3x3 convs 1->64->64 with 'same'
padding (padding=1), ReLU, max-pool 2, flatten, FC 12544-256-256-10 with ReLU. PyTorch's NCHW
layout, not Ticket Lab's NHWC: the same arithmetic in another memory order.

Masks: 50 % random with exact counts on every conv and dense kernel (biases unmasked), applied as
open_lth does: the forward pass uses the plain weights, and after each Adam step the weights are
multiplied by their masks in place, so pruned weights are zero at every forward.

Eager fp32: a plain loop (zero_grad, forward, F.cross_entropy, backward, torch.optim.Adam step,
re-mask), TF32 off for matmuls and cuDNN (fp32 arithmetic, as WGSL computes), cudnn.benchmark at
PyTorch's default (off) unless --cudnn-benchmark. Weights Glorot-normal, biases 0, Adam lr 2e-4,
batch 60.

Data: real MNIST from --mnist-dir, normalised with --mean/--std, held on the device; each step's
60 rows are drawn at random up front, so a step gathers its batch by index on the device.

Timing: --warmup steps, a device synchronisation, --steps steps, a synchronisation.

Prints one JSON line: {mode, masking, data, warmup, steps, seconds, steps_per_s, images_per_s,
loss_at_step10, device, torch_version, threads, cudnn_benchmark, tf32}.
"""
import argparse
import sys

import torch

from torch_timing import add_common_args, apply_random_masks, masked_step, print_result, setup, time_steps

from lenet_torch_stack import load_train


def glorot_normal_(w, fan_in, fan_out, gen):
    std = (2.0 / (fan_in + fan_out)) ** 0.5
    with torch.no_grad():
        w.copy_(torch.randn(w.shape, generator=gen) * std)


def conv2(gen):
    """Conv-2 for 28x28x1 inputs, with Ticket Lab's fan-in/fan-out for Glorot (k*k*c_in, k*k*c_out)."""
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 64, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(64, 64, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(14 * 14 * 64, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    )
    for layer in net:
        if isinstance(layer, torch.nn.Conv2d):
            k = layer.kernel_size[0] * layer.kernel_size[1]
            glorot_normal_(layer.weight, k * layer.in_channels, k * layer.out_channels, gen)
            torch.nn.init.zeros_(layer.bias)
        elif isinstance(layer, torch.nn.Linear):
            glorot_normal_(layer.weight, layer.in_features, layer.out_features, gen)
            torch.nn.init.zeros_(layer.bias)
    return net


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(ap, batch=60, lr=2e-4)
    ap.add_argument("--mnist-dir", required=True)
    ap.add_argument("--mean", type=float, default=0.1307)
    ap.add_argument("--std", type=float, default=0.3081)
    args = ap.parse_args()
    device = setup(args)
    x_all, y_all = load_train(args.mnist_dir, device, args.mean, args.std)
    x_all = x_all.reshape(-1, 1, 28, 28)

    gen = torch.Generator().manual_seed(args.seed)
    net = conv2(gen).to(device)
    masks = apply_random_masks(net, 0.5, gen)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8)

    total = args.warmup + args.steps
    rows = torch.randint(0, x_all.shape[0], (total, args.batch), device=device, generator=torch.Generator(device=device).manual_seed(args.seed))
    step = masked_step(net, opt, masks, x_all, y_all, rows)
    seconds, loss_at_step10 = time_steps(step, args.warmup, args.steps, device)
    print_result(args, device, seconds, loss_at_step10, masking="weights re-masked after each Adam step (open_lth)", data="MNIST, random batches on the device")
    return 0


if __name__ == "__main__":
    sys.exit(main())
