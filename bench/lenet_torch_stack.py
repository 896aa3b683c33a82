#!/usr/bin/env python3
"""PyTorch reference for Ticket Lab's stacked training: K masked LeNet-300-100 tickets, timed.

The same work the step engine does per step, in the form a researcher would write it in PyTorch:
  mode "eager":  K = 1, one ticket, the plain loop (as open_lth trains): addmm with w*m, F.cross_entropy,
                 backward, gradients masked, torch.optim.Adam, weights re-masked.
  mode "graph":  the same step for K = 1 captured once in a CUDA graph and replayed (capturable Adam).
  mode "stack":  K tickets stacked along a leading axis: baddbmm per layer for all K at once, one Adam
                 over the stacked tensors, each member on its own batch (its own data order).
Masks are 50 % random with exact counts, weights Glorot-normal, biases 0, Adam lr 1.2e-3, batch 60.
TF32 is off (fp32 matmuls, as WGSL computes). Data: MNIST from --mnist-dir on the device, batches
drawn by index on the device.

Prints one JSON line per K: {mode, k, steps_per_s, ticket_steps_per_s, seconds, steps, device, torch_version, last_loss}.
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
    _, dtype, rank = struct.unpack(">HBB", raw[:4])
    if dtype != 0x08:
        raise SystemExit(f"{path}: expected an IDX file of unsigned bytes")
    dims = struct.unpack(">" + "I" * rank, raw[4 : 4 + 4 * rank])
    return torch.frombuffer(bytearray(raw[4 + 4 * rank :]), dtype=torch.uint8).reshape(dims)


def find_idx(folder, stem):
    for name in (stem, stem + ".gz"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
    raise SystemExit(f"{folder}: no {stem}[.gz]")


def load_train(folder, device, mean, std):
    images = read_idx(find_idx(folder, "train-images-idx3-ubyte")).reshape(-1, 784)
    labels = read_idx(find_idx(folder, "train-labels-idx1-ubyte")).long()
    x = ((images.float() / 255.0 - mean) / std).to(device)
    return x, labels.to(device)


def stacked_params(k, gen, device):
    sizes = [784, 300, 100, 10]
    weights, biases, masks = [], [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        std = (2.0 / (fan_in + fan_out)) ** 0.5
        w = torch.randn(k, fan_in, fan_out, generator=gen) * std
        n = fan_in * fan_out
        m = torch.zeros(k, n)
        for p in range(k):
            m[p, torch.randperm(n, generator=gen)[: n // 2]] = 1.0
        m = m.reshape(k, fan_in, fan_out)
        weights.append((w * m).to(device).requires_grad_())
        biases.append(torch.zeros(k, 1, fan_out, device=device, requires_grad=True))
        masks.append(m.to(device))
    return weights, biases, masks


def make_step(weights, biases, masks, opt, x_all, y_all, k, batch):
    def step(rows):
        x = x_all[rows]  # [k, batch, 784]
        y = y_all[rows]  # [k, batch]
        h = x
        for layer, (w, b, m) in enumerate(zip(weights, biases, masks)):
            h = torch.baddbmm(b, h, w * m)
            if layer < len(weights) - 1:
                h = torch.relu(h)
        # Mean over each member's batch, summed over members: each member's gradient is its own mean loss's.
        loss = torch.nn.functional.cross_entropy(h.reshape(k * batch, -1), y.reshape(-1), reduction="sum") / batch
        opt.zero_grad(set_to_none=False)
        loss.backward()
        with torch.no_grad():
            for w, m in zip(weights, masks):
                w.grad.mul_(m)
        opt.step()
        with torch.no_grad():
            for w, m in zip(weights, masks):
                w.mul_(m)
        return loss

    return step


def run(mode, k, args, x_all, y_all, device):
    gen = torch.Generator().manual_seed(args.seed + k)
    weights, biases, masks = stacked_params(k, gen, device)
    params = [p for pair in zip(weights, biases) for p in pair]
    capturable = mode == "graph"
    opt = torch.optim.Adam(params, lr=args.lr, betas=(0.9, 0.999), eps=1e-8, capturable=capturable)
    step = make_step(weights, biases, masks, opt, x_all, y_all, k, args.batch)
    count = x_all.shape[0]
    total = args.warmup + args.steps
    # Every step's rows drawn up front on the device: each member its own random batch.
    all_rows = torch.randint(0, count, (total, k, args.batch), device=device, generator=torch.Generator(device=device).manual_seed(args.seed))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    if mode == "graph":
        rows_static = all_rows[0].clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                step(rows_static)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            loss_static = step(rows_static)

        def run_step(i):
            rows_static.copy_(all_rows[i])
            graph.replay()
            return loss_static

    else:
        def run_step(i):
            return step(all_rows[i])

    for i in range(args.warmup):
        run_step(i)
    sync()
    began = time.perf_counter()
    for i in range(args.warmup, total):
        loss = run_step(i)
    sync()
    seconds = time.perf_counter() - began
    return {
        "mode": mode,
        "k": k,
        "steps": args.steps,
        "seconds": seconds,
        "steps_per_s": args.steps / seconds,
        "ticket_steps_per_s": k * args.steps / seconds,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "torch_version": torch.__version__,
        "blas": blas_library(),
        "threads": torch.get_num_threads(),
        "last_loss": float(loss.detach()) / k,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mnist-dir", required=True)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--modes", default="eager,graph,stack", help="comma-separated: eager (K=1), graph (K=1, CUDA only), stack")
    ap.add_argument("--stacks", default="64,256", help="K values for mode stack")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--batch", type=int, default=60)
    ap.add_argument("--lr", type=float, default=1.2e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mean", type=float, default=0.1307)
    ap.add_argument("--std", type=float, default=0.3081)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device(args.device)
    x_all, y_all = load_train(args.mnist_dir, device, args.mean, args.std)
    for mode in args.modes.split(","):
        if mode == "graph" and device.type != "cuda":
            continue
        ks = [1] if mode in ("eager", "graph") else [int(k) for k in args.stacks.split(",") if k]
        for k in ks:
            print(json.dumps(run(mode, k, args, x_all, y_all, device)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
