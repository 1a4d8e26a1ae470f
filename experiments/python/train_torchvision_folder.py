#!/usr/bin/env python3
"""A torchvision architecture trained the way a PyTorch user trains on an
image folder (torchvision's ImageFolder + DataLoader, its ImageNet recipe at
224 x 224), then traced: the model of experiments/image_folder_mobilenet_v3.pbtxt.

    bazel run //tools:export_images -- --out=runs/images/fmnist_rgb224 --channels=3 --size=224 \\
        --format=jpg --max_per_split=3000
    bazel run //third_party:python_run -- experiments/python/train_torchvision_folder.py \\
        --root runs/images/fmnist_rgb224 [--arch mobilenet_v3_small] [--epochs 4]

Trains on ROOT/train, reports accuracy on ROOT/val and ROOT/test, and writes
torch.jit.trace of the eval-mode model (runs/python/<arch>_folder.pt).
"""
import argparse
import os
import time

import torch
import torch.nn.functional as F
import torchvision
from torchvision import datasets
from torchvision.transforms import v2

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def loader(root, split, train, workers, batch_size=64):
    if train:
        recipe = [v2.RandomResizedCrop(224, antialias=True), v2.RandomHorizontalFlip()]
    else:
        recipe = [v2.Resize(256, antialias=True), v2.CenterCrop(224)]
    recipe += [v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
    ds = datasets.ImageFolder(os.path.join(root, split), transform=v2.Compose(recipe))
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=train, num_workers=workers,
                                       generator=torch.Generator().manual_seed(0))


def accuracy(net, data):
    net.eval()
    right = n = 0
    with torch.no_grad():
        for x, y in data:
            right += (net(x).argmax(1) == y).sum().item()
            n += len(y)
    return 100.0 * right / n


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--arch", default="mobilenet_v3_small")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--out", default="")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    train = loader(a.root, "train", True, a.workers, a.batch_size)
    classes = len(train.dataset.classes)
    net = getattr(torchvision.models, a.arch)(weights=None, num_classes=classes)
    # torchvision's MobileNetV3 keeps batch-norm momentum 0.01, tuned for
    # ImageNet's 1.2M images: over a few hundred steps its running statistics
    # stay near their initial values and the eval-mode model predicts one
    # class. 0.1 (PyTorch's default) lets them follow.
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 0.1
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=a.epochs * len(train))
    for epoch in range(a.epochs):
        start = time.time()
        net.train()
        total = steps = 0
        for x, y in train:
            loss = F.cross_entropy(net(x), y)
            total += loss.item()
            steps += 1
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        val = accuracy(net, loader(a.root, "val", False, a.workers))
        print(f"epoch {epoch + 1}/{a.epochs}: train loss {total / steps:.3f}, val accuracy {val:.2f} %  "
              f"({time.time() - start:.0f} s)", flush=True)
    test = accuracy(net, loader(a.root, "test", False, a.workers))
    print(f"test accuracy {test:.2f} %")
    out = a.out or f"runs/python/{a.arch}_folder.pt"
    os.makedirs(os.path.dirname(out), exist_ok=True)
    net.eval()
    torch.jit.trace(net, torch.randn(2, 3, 224, 224)).save(out)
    print("traced ->", out)


if __name__ == "__main__":
    main()
