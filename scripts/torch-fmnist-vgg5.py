"""PyTorch yardstick: fmnist-vgg5 on the full Fashion-MNIST with the recipe of the engine issue.

Run with Debian's python3-torch: /usr/bin/python3 scripts/torch-fmnist-vgg5.py [--lr 1e-3] [--epochs 3] [--threads 2]
Prints per-epoch test accuracy and images/s. The net matches src/nn/zoo.ts fmnistVgg5.
"""
import argparse
import gzip
import time

import numpy as np
import torch
import torch.nn as nn

DIR = '/usr/share/datasets/fashion-mnist'


def idx(path, offset):
    with gzip.open(path, 'rb') as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def load(split):
    x = idx(f'{DIR}/{split}-images-idx3-ubyte.gz', 16).reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    y = idx(f'{DIR}/{split}-labels-idx1-ubyte.gz', 8).astype(np.int64)
    return torch.from_numpy((x - 0.286) / 0.353), torch.from_numpy(y)


def block(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xtr, ytr = load('train')
    xte, yte = load('t10k')
    net = nn.Sequential(*block(1, 32), *block(32, 32), nn.MaxPool2d(2), *block(32, 64), *block(64, 64), nn.MaxPool2d(2),
                        *block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    steps = a.epochs * ((len(xtr) + 127) // 128)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(a.seed)
    for epoch in range(a.epochs):
        net.train()
        perm = torch.randperm(len(xtr), generator=g)
        t0 = time.time()
        for i in range(0, len(xtr), 128):
            b = perm[i:i + 128]
            opt.zero_grad()
            loss = loss_fn(net(xtr[b]), ytr[b])
            loss.backward()
            opt.step()
            sched.step()
        dt = time.time() - t0
        net.eval()
        with torch.no_grad():
            correct = sum((net(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum().item() for i in range(0, len(xte), 1000))
        print(f'epoch {epoch + 1}/{a.epochs}: {len(xtr) / dt:.0f} images/s, test acc {100 * correct / len(xte):.2f}%', flush=True)


if __name__ == '__main__':
    main()
