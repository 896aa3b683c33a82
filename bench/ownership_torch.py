#!/usr/bin/env python3
"""PyTorch reference for Ticket Lab's ownership section: the same two operations as a researcher
would write them on the paper's code base (VITA-Group/NO-stealing-LTH, ResNet-20 in PyTorch).

- extract: from a 90 %-sparse ResNet-20 conv mask [out, in, kh, kw], the channel adjacency of a
  16x16 window (mask[o, i].any() over the kernel), compared with 256 bits, and the exact binomial
  tail P[Bin(256, 1/2) >= matches] in log space (math.lgamma), as Ticket Lab scores it;
- trigger forward: 100 trigger images (32x32x3) through ResNet-20 in eval mode, argmax.
Median of --repetitions, after a warm-up, on --threads CPU threads (or --device cuda).

Prints one JSON line: {extract_s, trigger_forward_s, device, torch_version, threads}.
"""
import argparse
import json
import math
import time

import torch

from resnet20_torch import ResNet20


def binomial_tail(n, k):
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k, n + 1)]
    top = max(terms)
    return math.exp(top + math.log(sum(math.exp(t - top) for t in terms)))


def median_seconds(fn, repetitions, sync):
    fn()
    sync()
    times = []
    for _ in range(repetitions):
        began = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - began)
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--repetitions', type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    device = torch.device(args.device)
    net = ResNet20().to(device).eval()
    # blocks.4.conv1 of the zoo's ResNet-20 (stage 2, 32 -> 32): a conv the signature may live in.
    weight = net.blocks[4].conv1.weight
    mask = (torch.rand(weight.shape, generator=gen) >= 0.9).to(device)
    bits = (torch.rand(256, generator=gen) < 0.5).to(device)

    def extract():
        window = mask[8:24, 8:24].flatten(2).any(2).flatten()
        matches = int((window == bits).sum().item())
        return binomial_tail(256, matches)

    images = torch.rand((100, 3, 32, 32), generator=gen).to(device)

    def forward():
        with torch.no_grad():
            return net(images).argmax(1)

    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    print(json.dumps({
        'extract_s': median_seconds(extract, args.repetitions, sync),
        'trigger_forward_s': median_seconds(forward, args.repetitions, sync),
        'device': str(device), 'torch_version': torch.__version__, 'threads': torch.get_num_threads(),
    }))


if __name__ == '__main__':
    main()
