"""Writes trainer/testdata/traced_bn.pt: a small CNN with batch norm and
dropout, traced in Python in eval mode (so training=False is baked into its
graph), for trainer tests. Input [N, 1, 12, 12], 4 classes.

    bazel run //third_party:python_run -- trainer/testdata/make_traced.py trainer/testdata/traced_bn.pt
"""
import sys

import torch
import torch.nn as nn

torch.manual_seed(0)
net = nn.Sequential(
    nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(16, 4),
).eval()
torch.jit.trace(net, torch.randn(2, 1, 12, 12)).save(sys.argv[1])
