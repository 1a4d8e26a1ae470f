#!/usr/bin/env python3
"""A model as someone else would bring it: defined, trained and traced in
Python (residual add, depthwise conv, concatenation, squeeze-excitation gate,
flatten -> linear), saved with torch.jit.trace for
experiments/fashion_mnist_python_traced.pbtxt.

    bazel run //third_party:python_run -- experiments/python/train_and_trace.py [--epochs 2] [--out runs/python/mixed_traced.pt]

Reads Debian's dataset-fashion-mnist IDX files directly (no torchvision
download); normalises with mean 0.2860 / std 0.3530 as the experiment's
eval_transforms do.
"""
import argparse
import gzip
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"


def idx(name):
    with gzip.open(os.path.join(DATA, name), "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.branch = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16))
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), nn.BatchNorm2d(16),
                                nn.ReLU6())
        self.pw = nn.Sequential(nn.Conv2d(16, 24, 1, bias=False), nn.BatchNorm2d(24))
        self.dw2 = nn.Sequential(nn.Conv2d(40, 80, 3, stride=2, padding=1, groups=40), nn.BatchNorm2d(80),
                                 nn.Hardswish())
        self.se_reduce = nn.Conv2d(80, 20, 1)
        self.se_expand = nn.Conv2d(20, 80, 1)
        self.mix = nn.Sequential(nn.Conv2d(80, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32),
                                 nn.ReLU())
        self.fc1 = nn.Linear(32 * 7 * 7, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = self.stem(x)
        x = F.relu(x + self.branch(x))                 # residual add
        y = self.pw(self.dw(x))                        # depthwise then pointwise
        z = torch.cat([x, y], dim=1)                   # concatenation
        z = self.dw2(z)                                # depthwise, multiplier 2
        s = F.adaptive_avg_pool2d(z, 1)
        s = torch.sigmoid(self.se_expand(F.relu(self.se_reduce(s))))
        z = self.mix(z * s)                            # squeeze-excitation gate
        h = F.relu(self.fc1(torch.flatten(z, 1)))      # flatten -> linear
        return self.fc2(h)


def train_epoch(net, x, y, opt, sched, generator=None, batch=128):
    """One epoch of cross-entropy over x, y in a random order (full batches only)."""
    net.train()
    perm = torch.randperm(len(x), generator=generator)
    for i in range(0, len(x) - batch + 1, batch):
        idx_ = perm[i:i + batch]
        loss = F.cross_entropy(net(x[idx_]), y[idx_])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--out", default="runs/python/mixed_traced.pt")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x = torch.from_numpy(idx("train-images-idx3-ubyte.gz").copy()).float().div(255).sub(0.2860).div(0.3530)
    x = x.unsqueeze(1)
    y = torch.from_numpy(idx("train-labels-idx1-ubyte.gz").copy()).long()
    xt = torch.from_numpy(idx("t10k-images-idx3-ubyte.gz").copy()).float().div(255).sub(0.2860).div(0.3530)
    xt = xt.unsqueeze(1)
    yt = torch.from_numpy(idx("t10k-labels-idx1-ubyte.gz").copy()).long()
    net = Mixed()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    steps = a.epochs * (len(x) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=steps)
    for epoch in range(a.epochs):
        start = time.time()
        train_epoch(net, x, y, opt, sched)
        net.eval()
        with torch.no_grad():
            acc = sum((net(xt[i:i + 1000]).argmax(1) == yt[i:i + 1000]).sum().item() for i in range(0, 10000, 1000))
        print(f"epoch {epoch + 1}/{a.epochs}: test accuracy {acc / 100:.2f} %  ({time.time() - start:.0f} s)",
              flush=True)
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    torch.jit.trace(net, xt[:2]).save(a.out)
    print("traced ->", a.out)


if __name__ == "__main__":
    main()
