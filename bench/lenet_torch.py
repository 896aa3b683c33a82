#!/usr/bin/env python3
"""The PyTorch reference for `npm run bench`: one masked LeNet-300-100 training step, timed.

The step does what core's trainMasked does per iteration, so steps/s compare like for like:
build a normalised batch from MNIST bytes, forward with w * m, cross-entropy, backward, mask the
gradients, Adam (PyTorch's rule, which core's MaskedAdam copies), then multiply the weights by the
masks again (core's applyMasks guard). Glorot-normal kernels, zero biases, 50 % random masks with
exact counts on every kernel (core prunes the output kernel too).

Data: MNIST IDX files when --mnist-dir is given (the folder the TF.js side loaded), otherwise
random bytes of MNIST's shape; the JSON line says which.

Prints one JSON line: {steps_per_s, samples_per_s, torch_version, threads, device, ...}.
"""
import argparse
import gzip
import json
import os
import struct
import sys
import time

import torch

from torch_env import blas_library


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype, rank = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise SystemExit(f"{path}: expected an IDX file of unsigned bytes")
    dims = struct.unpack(">" + "I" * rank, raw[4 : 4 + 4 * rank])
    data = torch.frombuffer(bytearray(raw[4 + 4 * rank :]), dtype=torch.uint8)
    return data.reshape(dims)


def find_idx(folder, stem):
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
    raise SystemExit(f"{folder}: no {stem}[.gz]")


def load_train(folder):
    images = read_idx(find_idx(folder, "train-images-idx3-ubyte"))
    labels = read_idx(find_idx(folder, "train-labels-idx1-ubyte"))
    return images.reshape(images.shape[0], -1), labels.long()


def glorot_normal(fan_in, fan_out, gen):
    # Kernels stored [out, in] as nn.Linear does; the std is symmetric in the fans.
    std = (2.0 / (fan_in + fan_out)) ** 0.5
    return torch.randn(fan_out, fan_in, generator=gen) * std


def random_mask(shape, keep_fraction, gen):
    n = shape[0] * shape[1]
    keep = round(keep_fraction * n)
    flat = torch.zeros(n)
    flat[torch.randperm(n, generator=gen)[:keep]] = 1.0
    return flat.reshape(shape)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000, help="timed steps")
    ap.add_argument("--warmup", type=int, default=50, help="untimed steps first (allocator, BLAS buffers)")
    ap.add_argument("--batch", type=int, default=60)
    ap.add_argument("--lr", type=float, default=1.2e-3)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads; 1 matches TF.js wasm in Node")
    ap.add_argument("--mnist-dir", default=None, help="folder with MNIST IDX files; random data of MNIST shape without it")
    ap.add_argument("--mean", type=float, default=0.1307, help="pixel normalisation, as core measures it")
    ap.add_argument("--std", type=float, default=0.3081)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)

    if args.mnist_dir:
        images, labels = load_train(args.mnist_dir)
        data = "mnist"
    else:
        images = torch.randint(0, 256, (60000, 784), dtype=torch.uint8, generator=gen)
        labels = torch.randint(0, 10, (60000,), generator=gen)
        data = "random"

    sizes = [784, 300, 100, 10]
    weights, biases, masks = [], [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        m = random_mask((fan_out, fan_in), 0.5, gen)
        w = (glorot_normal(fan_in, fan_out, gen) * m).requires_grad_()
        weights.append(w)
        biases.append(torch.zeros(fan_out, requires_grad=True))
        masks.append(m)
    params = [p for pair in zip(weights, biases) for p in pair]
    opt = torch.optim.Adam(params, lr=args.lr, betas=(0.9, 0.999), eps=1e-8)

    count = images.shape[0]
    order = torch.randperm(count, generator=gen)
    per_epoch = count // args.batch
    scale = 1.0 / (255.0 * args.std)
    shift = args.mean / args.std

    def step(i):
        # A fresh permutation each epoch, as core's BatchOrder reshuffles per (seed, epoch).
        nonlocal order
        if i > 0 and i % per_epoch == 0:
            order = torch.randperm(count, generator=gen)
        rows = order[(i % per_epoch) * args.batch : (i % per_epoch + 1) * args.batch]
        x = images[rows].float() * scale - shift
        y = labels[rows]
        h = x
        for layer, (w, b, m) in enumerate(zip(weights, biases, masks)):
            h = torch.addmm(b, h, (w * m).t())
            if layer < len(weights) - 1:
                h = torch.relu(h)
        loss = torch.nn.functional.cross_entropy(h, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            for w, m in zip(weights, masks):
                w.grad.mul_(m)
        opt.step()
        with torch.no_grad():
            for w, m in zip(weights, masks):
                w.mul_(m)
        return loss

    for i in range(args.warmup):
        step(i)
    began = time.perf_counter()
    for i in range(args.warmup, args.warmup + args.steps):
        loss = step(i)
    seconds = time.perf_counter() - began
    last_loss = float(loss.detach()) if args.steps > 0 else None

    steps_per_s = args.steps / seconds if seconds > 0 else None
    print(
        json.dumps(
            {
                "steps_per_s": steps_per_s,
                "samples_per_s": steps_per_s * args.batch if steps_per_s is not None else None,
                "torch_version": torch.__version__,
                "blas": blas_library(),
                "threads": torch.get_num_threads(),
                "device": "cpu",
                "data": data,
                "steps": args.steps,
                "warmup": args.warmup,
                "batch": args.batch,
                "seconds": seconds,
                "last_loss": last_loss,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
