#!/usr/bin/env python3
"""The LTH LeNet-300-100 experiment in plain PyTorch, one network at a time: the yardstick for
Ticket Lab's end-to-end time (docs/results/gpu.md).

What it does is what `ticket-lab search imp --model lenet-300-100 --dataset mnist --iterations N
--levels L --control reinit --control-levels ...` does: Gaussian Glorot init, Adam lr 1.2e-3, batch 60,
N iterations per level, validation every 100 iterations on 5,000 held-out training images, the test
accuracy at the iteration of least validation loss, layer-wise magnitude pruning of 20 % of the
remaining hidden weights and 10 % of the output layer per level, rewinding to the initialisation;
the random re-initialisation control at the given levels. Masks are multiplied into the weights in
the forward pass, gradients masked, weights re-masked after each Adam step, as open_lth does.

Prints one JSON line per trained network and a final {"total_seconds": ...} line.
"""
import argparse
import gzip
import json
import os
import struct
import sys
import time

import torch
import torch.nn.functional as F

from torch_env import blas_library


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    _, _, rank = struct.unpack(">HBB", raw[:4])
    dims = struct.unpack(">" + "I" * rank, raw[4 : 4 + 4 * rank])
    return torch.frombuffer(bytearray(raw[4 + 4 * rank :]), dtype=torch.uint8).reshape(dims)


def load(folder, stem):
    for name in (stem, stem + ".gz"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return read_idx(path)
    raise SystemExit(f"{folder}: no {stem}[.gz]")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mnist-dir", required=True)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--levels", type=int, default=15, help="pruned levels after the dense level 0")
    ap.add_argument("--iterations", type=int, default=5000)
    ap.add_argument("--control-levels", default="3,6,9,12,15")
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--validation-size", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(args.seed)

    images = load(args.mnist_dir, "train-images-idx3-ubyte").reshape(-1, 784).float() / 255.0
    labels = load(args.mnist_dir, "train-labels-idx1-ubyte").long()
    test_x = load(args.mnist_dir, "t10k-images-idx3-ubyte").reshape(-1, 784).float() / 255.0
    test_y = load(args.mnist_dir, "t10k-labels-idx1-ubyte").long()
    order = torch.randperm(images.shape[0], generator=gen)
    val_idx, train_idx = order[: args.validation_size], order[args.validation_size :]
    mean, std = images[train_idx].mean(), images[train_idx].std()
    norm = lambda x: ((x - mean) / std).to(device)
    train_x, train_y = norm(images[train_idx]), labels[train_idx].to(device)
    val_x, val_y = norm(images[val_idx]), labels[val_idx].to(device)
    test_x, test_y = norm(test_x), test_y.to(device)

    sizes = [784, 300, 100, 10]
    rates = [0.2, 0.2, 0.1]

    def glorot():
        return [torch.randn(i, o, generator=gen) * (2.0 / (i + o)) ** 0.5 for i, o in zip(sizes[:-1], sizes[1:])]

    def evaluate(ws, bs, x, y):
        with torch.no_grad():
            h = x
            for layer, (w, b) in enumerate(zip(ws, bs)):
                h = torch.addmm(b, h, w)
                if layer < 2:
                    h = torch.relu(h)
            return F.cross_entropy(h, y).item(), (h.argmax(1) == y).float().mean().item()

    def train(init, masks):
        ws = [(w * m).to(device).requires_grad_() for w, m in zip(init, masks)]
        bs = [torch.zeros(o, device=device, requires_grad=True) for o in sizes[1:]]
        ms = [m.to(device) for m in masks]
        opt = torch.optim.Adam(ws + bs, lr=1.2e-3)
        best = (float("inf"), 0, None)
        n = train_x.shape[0]
        perm = torch.randperm(n, device=device)
        per_epoch = n // 60
        for it in range(args.iterations + 1):
            if it % args.eval_every == 0 or it == args.iterations:
                loss, _ = evaluate(ws, bs, val_x, val_y)
                if loss < best[0]:
                    best = (loss, it, [w.detach().clone() for w in ws] + [b.detach().clone() for b in bs])
            if it == args.iterations:
                break
            if it % per_epoch == 0 and it > 0:
                perm = torch.randperm(n, device=device)
            rows = perm[(it % per_epoch) * 60 : (it % per_epoch + 1) * 60]
            h = train_x[rows]
            for layer, (w, b, m) in enumerate(zip(ws, bs, ms)):
                h = torch.addmm(b, h, w * m)
                if layer < 2:
                    h = torch.relu(h)
            loss = F.cross_entropy(h, train_y[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            with torch.no_grad():
                for w, m in zip(ws, ms):
                    w.grad.mul_(m)
            opt.step()
            with torch.no_grad():
                for w, m in zip(ws, ms):
                    w.mul_(m)
        saved = best[2]
        _, test_acc = evaluate(saved[:3], saved[3:], test_x, test_y)
        return [w.detach().cpu() for w in ws], best[1], test_acc

    controls = {int(x) for x in args.control_levels.split(",") if x}
    init = glorot()
    masks = [torch.ones(i, o) for i, o in zip(sizes[:-1], sizes[1:])]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    began = time.perf_counter()
    for level in range(args.levels + 1):
        if level > 0:
            new = []
            for w, m, rate in zip(trained, masks, rates):
                kept = int(m.sum().item())
                prune = -(-int(round(rate * kept * 1e6)) // 1000000)  # ceil(rate · kept), as core
                scores = (w.abs() + 0.0).flatten()
                scores[m.flatten() == 0] = -1.0
                keep_idx = torch.topk(scores, kept - prune).indices
                nm = torch.zeros_like(m).flatten()
                nm[keep_idx] = 1.0
                new.append(nm.reshape(m.shape))
            masks = new
        trained, stop, acc = train(init, masks)
        remaining = sum(m.sum().item() for m in masks) / sum(m.numel() for m in masks)
        print(json.dumps({"level": level, "role": "ticket", "remaining": remaining, "early_stop": stop, "test_accuracy": acc}), flush=True)
        if level in controls:
            _, cstop, cacc = train(glorot(), masks)
            print(json.dumps({"level": level, "role": "reinit-control", "remaining": remaining, "early_stop": cstop, "test_accuracy": cacc}), flush=True)
    sync()
    total = time.perf_counter() - began
    print(json.dumps({"total_seconds": total, "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "torch_version": torch.__version__, "blas": blas_library(), "iterations": args.iterations, "levels": args.levels, "controls": sorted(controls)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
