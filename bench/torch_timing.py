"""What the PyTorch conv references (conv2_torch.py, resnet20_torch.py) share: their command-line
options and PyTorch settings, seeded random masks, and the timed training loop and result line (one
masked network trained eagerly, re-masked after each optimiser step as open_lth does, timed between
two device synchronisations after a warm-up)."""
import json
import time

import torch
import torch.nn.functional as F

from torch_env import blas_library


def add_common_args(ap, batch, lr):
    """The options both scripts take; `batch` and `lr` are each script's defaults."""
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--batch", type=int, default=batch)
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (CPU)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN time its algorithms first (off by default, as in PyTorch)")


def setup(args):
    """Checks the step counts and sets fp32 arithmetic (TF32 off, as WGSL computes) and threads; returns the device."""
    if args.warmup < 0 or args.steps < 1:
        raise SystemExit("--warmup must be at least 0 and --steps at least 1")
    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    return torch.device(args.device)


def apply_random_masks(net, fraction_kept, gen):
    """Masks each conv and dense weight, keeping round(fraction_kept * n) entries at random, in module
    order; multiplies the weights by them and returns the (weight, mask) pairs."""
    masks = []
    for m in net.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            n = m.weight.numel()
            mask = torch.zeros(n)
            mask[torch.randperm(n, generator=gen)[: round(fraction_kept * n)]] = 1.0
            masks.append((m.weight, mask.reshape(m.weight.shape).to(m.weight.device)))
    with torch.no_grad():
        for w, mask in masks:
            w.mul_(mask)
    return masks


def masked_step(net, opt, masks, x_all, y_all, rows):
    """A step function over pre-drawn batch rows: zero_grad, forward, cross-entropy, backward, step, re-mask."""

    def step(i):
        x = x_all[rows[i]]
        y = y_all[rows[i]]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for w, m in masks:
                w.mul_(m)
        return loss

    return step


def time_steps(step, warmup, steps, device):
    """Runs `warmup` steps, synchronises, times `steps` more; returns (seconds, loss of step 10 or None)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    losses = {}

    def run(first, last):
        for i in range(first, last):
            loss = step(i)
            if i == 10:  # the loss of step 10, after 10 updates; read after the clock stops
                losses[10] = loss.detach()

    run(0, warmup)
    sync()
    began = time.perf_counter()
    run(warmup, warmup + steps)
    sync()
    seconds = time.perf_counter() - began
    return seconds, (float(losses[10]) if 10 in losses else None)


def print_result(args, device, seconds, loss_at_step10, masking, data, **extra):
    """The one JSON line the bench reads (bench/conv-throughput.ts, TorchConvRow)."""
    print(
        json.dumps(
            {
                "mode": "eager",
                "masking": masking,
                "data": data,
                "warmup": args.warmup,
                "steps": args.steps,
                "seconds": seconds,
                "steps_per_s": args.steps / seconds,
                "images_per_s": args.steps * args.batch / seconds,
                "loss_at_step10": loss_at_step10,
                "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                "torch_version": torch.__version__,
                "blas": blas_library(),
                "threads": torch.get_num_threads(),
                "cudnn_benchmark": args.cudnn_benchmark,
                "tf32": False,
                **extra,
            }
        ),
        flush=True,
    )
