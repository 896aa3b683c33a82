#!/usr/bin/env python3
"""PyTorch reference accuracy: dense ResNet-20 trained on CIFAR-10 image-folder zips, as Ticket Lab trains it.

The network, initialisation and optimiser are resnet20_torch.py's (the zoo's resnet-20: option-A
shortcuts, Kaiming-normal weights, BN gamma ~ U(0, 1)); the schedule is open_lth's cifar_resnet_20
scaled to --epochs: SGD lr 0.1, momentum 0.9, weight decay 1e-4, batch 128, lr x 0.1 at 50 % and
75 % of the run, random crop with 4 pixels of zero padding and horizontal flip. 45,000 training
images (5,000 held out at random, as Ticket Lab's validation split; not used here), floor(45,000 /
128) steps per epoch, pixels normalised as (x/255 - mean)/std with one mean and std over the
training pixels (Ticket Lab's normalisation). Test accuracy on the 10,000 test images after the
last step, in eval mode.

Reads train.zip and test.zip (one folder per class, in CIFAR-10's label order, JPEG files) from
--data-dir; decodes with Pillow, else torchvision. Prints one JSON line.
"""
import argparse
import io
import json
import sys
import time
import zipfile

import torch
import torch.nn.functional as F

from resnet20_torch import ResNet20, init_

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def decoder():
    try:
        from PIL import Image
        import numpy as np

        return lambda data: torch.from_numpy(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).copy())
    except ImportError:
        from torchvision.io import ImageReadMode, decode_jpeg

        return lambda data: decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB).permute(1, 2, 0)


def load_zip(path, decode):
    images, labels = [], []
    with zipfile.ZipFile(path) as z:
        for name in sorted(z.namelist()):
            parts = name.split("/")
            if len(parts) < 2 or parts[-2] not in CLASSES or not parts[-1]:
                continue
            images.append(decode(z.read(name)))
            labels.append(CLASSES.index(parts[-2]))
    return torch.stack(images), torch.tensor(labels)


def augment(x, gen):
    """Random crop with 4 pixels of zero padding and a left-right flip per image (x: N, C, 32, 32)."""
    n, c = x.shape[0], x.shape[1]
    padded = F.pad(x, (4, 4, 4, 4))
    offsets = torch.arange(32, device=x.device)
    dy = torch.randint(0, 9, (n,), generator=gen, device=x.device)
    dx = torch.randint(0, 9, (n,), generator=gen, device=x.device)
    out = padded.gather(2, (dy[:, None] + offsets)[:, None, :, None].expand(n, c, 32, 40))
    out = out.gather(3, (dx[:, None] + offsets)[:, None, None, :].expand(n, c, 32, 32))
    flip = torch.rand(n, generator=gen, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--epochs", type=int, default=160)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device(args.device)
    began = time.time()

    decode = decoder()
    train_x, train_y = load_zip(f"{args.data_dir}/train.zip", decode)
    test_x, test_y = load_zip(f"{args.data_dir}/test.zip", decode)
    gen = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(train_x.shape[0], generator=gen)
    train_x, train_y = train_x[order[5000:]], train_y[order[5000:]]
    mean = train_x.float().mean().item() / 255
    std = (train_x.float() / 255).std().item()
    prep = lambda x: ((x.permute(0, 3, 1, 2).float() / 255 - mean) / std).to(device)
    train_x, test_x = prep(train_x), prep(test_x)
    train_y, test_y = train_y.to(device), test_y.to(device)
    decoded_s = time.time() - began

    net = ResNet20()
    init_(net, gen)
    net = net.to(device).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    per_epoch = train_x.shape[0] // 128
    steps = args.epochs * per_epoch
    drops = [round(0.5 * steps), round(0.75 * steps)]
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, drops, 0.1)
    dgen = torch.Generator(device=device).manual_seed(args.seed)
    step = 0
    last_loss = None
    while step < steps:
        perm = torch.randperm(train_x.shape[0], generator=dgen, device=device)
        for b in range(per_epoch):
            if step == steps:
                break
            rows = perm[b * 128:(b + 1) * 128]
            loss = F.cross_entropy(net(augment(train_x[rows], dgen)), train_y[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
        last_loss = loss.item()
    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, test_x.shape[0], 1000):
            correct += (net(test_x[i:i + 1000]).argmax(1) == test_y[i:i + 1000]).sum().item()
    print(json.dumps({
        "model": "resnet-20 (option A), dense", "data": "CIFAR-10 JPEG image-folder zips", "epochs": args.epochs, "steps": steps,
        "lr_drops_at": drops, "final_train_loss": last_loss, "test_accuracy": correct / test_x.shape[0],
        "decode_s": round(decoded_s, 1), "train_s": round(time.time() - began - decoded_s, 1), "device": str(device), "torch_version": torch.__version__,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
