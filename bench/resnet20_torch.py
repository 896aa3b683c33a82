#!/usr/bin/env python3
"""PyTorch reference for Ticket Lab's resnet section: one masked ResNet-20 trained eagerly, timed.

The network is the zoo's resnet-20 (core/models/architectures.ts): the CIFAR ResNet of He et al.
(2016, section 4.2): 3x3 conv 16 + BN + ReLU, three stages of three basic blocks (16, 32, 64
channels, stride 2 at the first block of stages 2 and 3), option-A shortcuts (identity; where the
shape changes, x[:, :, ::2, ::2] with the channels zero-padded half before and half after), global
average pooling, FC 64-10. Convs have no bias; BN eps 1e-5, momentum 0.1 (PyTorch's defaults).

Masks: 50 % random with exact counts on every conv and the FC kernel (BN and biases unmasked),
applied as open_lth does: the forward pass uses the plain weights, and after each optimiser step
the weights are multiplied by their masks in place, so pruned weights are zero at every forward.

Eager fp32: a plain loop (zero_grad, forward in train mode, F.cross_entropy, backward, SGD step
with momentum 0.9 and weight decay 1e-4, re-mask), TF32 off for matmuls and cuDNN, cudnn.benchmark
off unless --cudnn-benchmark. Kaiming-normal conv and FC weights, BN gamma ~ U(0, 1), beta 0
(open_lth), lr 0.1, batch 128.

Data: random CIFAR-shaped images (N(0, 1) floats, 32x32x3) and labels, --images of them, held on
the device; each step's rows are drawn at random up front, as in ../shared/gpu's anchor.

Timing: --warmup steps, a device synchronisation, --steps steps, a synchronisation.

Prints one JSON line: {mode, masking, data, warmup, steps, seconds, steps_per_s, images_per_s,
loss_at_step10, device, torch_version, blas, threads, cudnn_benchmark, tf32}.
"""
import argparse
import sys

import torch
import torch.nn.functional as F

from torch_timing import add_common_args, apply_random_masks, masked_step, print_result, setup, time_steps


class Block(torch.nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(c_out)
        self.conv2 = torch.nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(c_out)
        self.pad = (c_out - c_in) // 2 if (stride != 1 or c_in != c_out) else None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.pad is None else F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + shortcut)


class ResNet20(torch.nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn = torch.nn.BatchNorm2d(16)
        blocks = []
        c_in = 16
        for stage, c_out in enumerate([16, 32, 64]):
            for b in range(3):
                blocks.append(Block(c_in, c_out, 2 if stage > 0 and b == 0 else 1))
                c_in = c_out
        self.blocks = torch.nn.Sequential(*blocks)
        self.fc = torch.nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        x = self.blocks(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def init_(net, gen):
    for m in net.modules():
        with torch.no_grad():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen))
                m.bias.zero_()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(ap, batch=128, lr=0.1)
    ap.add_argument("--images", type=int, default=5120)
    args = ap.parse_args()
    device = setup(args)

    gen = torch.Generator().manual_seed(args.seed)
    x_all = torch.randn((args.images, 3, 32, 32), generator=gen).to(device)
    y_all = torch.randint(0, 10, (args.images,), generator=gen).to(device)
    net = ResNet20()
    init_(net, gen)
    net = net.to(device).train()
    masks = apply_random_masks(net, 0.5, gen)
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)

    total = args.warmup + args.steps
    rows = torch.randint(0, args.images, (total, args.batch), generator=gen).to(device)
    step = masked_step(net, opt, masks, x_all, y_all, rows)
    seconds, loss_at_step10 = time_steps(step, args.warmup, args.steps, device)
    print_result(args, device, seconds, loss_at_step10, masking="weights re-masked after each SGD step (open_lth)", data="random CIFAR-shaped images on the device", parameters=sum(p.numel() for p in net.parameters()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
