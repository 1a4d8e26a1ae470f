"""Python half of //trainer/benchmark:train_epoch_benchmark: one training epoch
of the same architecture on the same Fashion-MNIST samples, the way a PyTorch
user writes it (pre-normalised tensors, randperm batches, eager nn.Module),
the same eager loop with the model in channels-last (what a user who knows
oneDNN would write), and the plain loop on slimfit's exported TorchScript.

    python3 train_epoch.py DATA_DIR SAMPLES BATCH THREADS TORCHSCRIPT_PT MODEL
MODEL: resnet_small or vgg_small.
prints: eager_seconds=<s> eager_channels_last_seconds=<s> torchscript_seconds=<s>
"""
import gzip
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNetSmall(nn.Module):
    """model/zoo/resnet_small.cc in eager PyTorch."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for i, w in enumerate([16, 32, 64]):
            layers.append(nn.Sequential(BasicBlock(cin, w, 1 if i == 0 else 2), BasicBlock(w, w, 1)))
            cin = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class VggSmall(nn.Module):
    """model/zoo/vgg_small.cc in eager PyTorch."""

    def __init__(self, classes=10, side=28):
        super().__init__()
        layers, cin = [], 1
        for width in [32, 64, 128]:
            for _ in range(2):
                layers += [nn.Conv2d(cin, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
                cin = width
            layers.append(nn.MaxPool2d(2, 2))
            side //= 2
        self.features = nn.Sequential(*layers)
        self.fc1 = nn.Linear(cin * side * side, 256)
        self.fc2 = nn.Linear(256, classes)

    def forward(self, x):
        x = torch.flatten(self.features(x), 1)
        return self.fc2(F.dropout(F.relu(self.fc1(x)), 0.5, self.training))


MODELS = {"resnet_small": ResNetSmall, "vgg_small": VggSmall}


def epoch(model, x, y, batch, channels_last=False):
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    order = torch.randperm(x.shape[0])
    start = time.perf_counter()
    for i in range(0, x.shape[0], batch):
        idx = order[i:i + batch]
        opt.zero_grad()
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def main():
    data_dir, samples, batch, threads, ts_path, name = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                                        int(sys.argv[4]), sys.argv[5], sys.argv[6])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    images = read_idx(f"{data_dir}/train-images-idx3-ubyte.gz")[:samples]
    labels = read_idx(f"{data_dir}/train-labels-idx1-ubyte.gz")[:samples]
    x = (torch.from_numpy(images.copy()).float().div(255).unsqueeze(1) - 0.2860) / 0.3530
    y = torch.from_numpy(labels.copy()).long()
    eager = epoch(MODELS[name](), x, y, batch)
    eager_cl = epoch(MODELS[name](), x, y, batch, channels_last=True)
    scripted = epoch(torch.jit.load(ts_path), x, y, batch)
    print(f"eager_seconds={eager:.3f} eager_channels_last_seconds={eager_cl:.3f} torchscript_seconds={scripted:.3f}")


if __name__ == "__main__":
    main()
