"""Writes the Python-made models the graph tests use (input [N, 1, 16, 16]):

  mixed_traced.pt / mixed_scripted.pt  residual add, depthwise conv (multiplier 1
      and 2), concatenation, a squeeze-excitation gate (sigmoid * x), flatten ->
      linear -> linear; traced and scripted
  dense_scripted.pt  DenseNet-style: a list grown with append, concatenated
      before each layer; scripted (the list survives in the graph)
  const_view_traced.pt  x.view(-1, 8 * 4 * 4) traced: the view's shape is a
      constant, so the channels feeding it cannot be pruned
  const_shuffle_traced.pt  a channel shuffle written with constant sizes
      (x.view(-1, 2, 4, 16, 16)): both halves of the split are pinned, so the
      channels feeding it cannot be pruned
  grouped_traced.pt / grouped_scripted.pt  ResNeXt-style: a bottleneck with a
      grouped 3x3 conv (groups 4) inside a residual add, then a grouped conv
      whose groups widen (groups 2, 8 -> 12 channels each, with bias)
  everyday_traced.pt / everyday_scripted.pt  instance norm, PReLU, a crop by
      slicing, an SE gate from linear layers and unsqueeze, squeeze after pooling
  shuffle_traced.pt / shuffle_scripted.pt  ShuffleNetV2-style: chunk along
      channels, a branch on one half, cat, and torchvision's channel_shuffle
      (view to [N, groups, C/groups, H, W], transpose, view back), then a
      linear layer over channels between permutes (ConvNeXt's pointwise convs)

    bazel run //third_party:python_run -- graph/testdata/make_models.py graph/testdata [names...]

With names (mixed, dense, const_view, const_shuffle, grouped, shuffle, everyday), writes only those.
  pooled_traced.pt / pooled_scripted.pt  VGG-style relu -> max pool three
      ways (nn.ReLU() then nn.MaxPool2d modules, F.relu then F.max_pool2d,
      nn.ReLU(inplace=True) then a padded ceil-mode pool module) and a relu
      that a second reader keeps before its pool
"""
import os
import sys
from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F


class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.branch = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8),
                                nn.ReLU6())
        self.pw = nn.Sequential(nn.Conv2d(8, 12, 1, bias=False), nn.BatchNorm2d(12))
        self.dw2 = nn.Sequential(nn.Conv2d(20, 40, 3, stride=2, padding=1, groups=20), nn.BatchNorm2d(40),
                                 nn.Hardswish())
        self.se_reduce = nn.Conv2d(40, 10, 1)
        self.se_expand = nn.Conv2d(10, 40, 1)
        self.mix = nn.Sequential(nn.Conv2d(40, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16),
                                 nn.ReLU())
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 10)

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


class DenseLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.l1 = nn.Sequential(nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))
        self.l2 = nn.Sequential(nn.BatchNorm2d(12), nn.ReLU(), nn.Conv2d(12, 4, 3, padding=1))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        feats: List[torch.Tensor] = [self.stem(x)]
        feats.append(self.l1(torch.cat(feats, 1)))
        feats.append(self.l2(torch.cat(feats, 1)))
        z = torch.cat(feats, 1)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(z, 1), 1))


class ConstView(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 8, 3)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)     # 12 -> 6
        x = F.max_pool2d(F.relu(self.conv2(x)), 1)     # 6 -> 4
        return self.fc(x.view(-1, 8 * 4 * 4))


class Grouped(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.reduce = nn.Sequential(nn.Conv2d(16, 16, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.group = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=4, bias=False), nn.BatchNorm2d(16),
                                   nn.ReLU())
        self.expand = nn.Sequential(nn.Conv2d(16, 16, 1, bias=False), nn.BatchNorm2d(16))
        self.widen = nn.Sequential(nn.Conv2d(16, 24, 3, stride=2, padding=1, groups=2), nn.BatchNorm2d(24),
                                   nn.ReLU())
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        x = self.stem(x)
        x = F.relu(x + self.expand(self.group(self.reduce(x))))   # grouped bottleneck, residual
        x = self.widen(x)                                           # groups 2, 8 -> 12 per group
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    # torchvision.models.shufflenetv2.channel_shuffle
    batchsize, num_channels, height, width = x.size()
    channels_per_group = num_channels // groups
    x = x.view(batchsize, groups, channels_per_group, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batchsize, num_channels, height, width)


class Shuffle(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.branch = nn.Sequential(
            nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8),
            nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(16, 24, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(24),
                                  nn.ReLU())
        self.pw = nn.Linear(24, 24)
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        x = self.stem(x)
        x1, x2 = x.chunk(2, dim=1)
        x = channel_shuffle(torch.cat((x1, self.branch(x2)), dim=1), 2)
        x = self.down(x)
        x = F.gelu(self.pw(x.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)  # ConvNeXt-style pointwise linear
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class ConstShuffle(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = x.view(-1, 2, 4, 16, 16).transpose(1, 2).reshape(-1, 8, 16, 16)
        x = F.relu(self.conv2(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Everyday(nn.Module):
    """Ops people write in their own CNNs: instance norm, PReLU, cropping by
    slicing, an SE gate built from linear layers and unsqueeze, squeeze
    after pooling."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 12, 3, padding=1)
        self.norm1 = nn.InstanceNorm2d(12, affine=True)
        self.act1 = nn.PReLU(12)
        self.conv2 = nn.Conv2d(12, 16, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.se1 = nn.Linear(16, 4)
        self.se2 = nn.Linear(4, 16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.act1(self.norm1(self.conv1(x)))
        x = x[:, :, 1:-1, 1:-1]                                    # crop: slice the spatial axes
        x = F.relu(self.bn2(self.conv2(x)))
        s = torch.sigmoid(self.se2(F.relu(self.se1(x.mean((2, 3))))))
        x = x * s.unsqueeze(-1).unsqueeze(-1)                      # SE gate from linear layers
        return self.fc(F.adaptive_avg_pool2d(x, 1).squeeze(-1).squeeze(-1))


class Pooled(nn.Module):
    def __init__(self):
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                    nn.MaxPool2d(2))
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.block3 = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
                                    nn.ReLU(inplace=True), nn.MaxPool2d(2, padding=1, ceil_mode=True))
        self.conv4 = nn.Conv2d(16, 16, 1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.block1(x)                                          # 16 -> 8
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)                  # 8 -> 4
        x = self.block3(x)                                          # 4 -> 3 (padded, ceil mode)
        r = F.relu(self.conv4(x))
        y = F.max_pool2d(r, 3) + r.mean((2, 3), keepdim=True)       # r has a second reader
        return self.fc(torch.flatten(y, 1))


def settle(net, shape):
    torch.manual_seed(0)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(*shape) * 2 + 0.5)
    return net.eval()


def traced_and_scripted(d, name, net):
    torch.manual_seed(0)
    net = settle(net, (8, 1, 16, 16))
    torch.jit.trace(net, torch.randn(2, 1, 16, 16)).save(os.path.join(d, name + "_traced.pt"))
    torch.jit.script(net).save(os.path.join(d, name + "_scripted.pt"))


def main(d, names):
    if not names or "mixed" in names:
        torch.manual_seed(0)
        mixed = settle(Mixed(), (8, 1, 16, 16))
        x = torch.randn(2, 1, 16, 16)
        torch.jit.trace(mixed, x).save(os.path.join(d, "mixed_traced.pt"))
        torch.jit.script(mixed).save(os.path.join(d, "mixed_scripted.pt"))
    if not names or "dense" in names:
        dense = settle(DenseLike(), (8, 1, 16, 16))
        torch.jit.script(dense).save(os.path.join(d, "dense_scripted.pt"))
    if not names or "const_view" in names:
        torch.manual_seed(0)
        cv = ConstView().eval()
        torch.jit.trace(cv, torch.randn(2, 1, 16, 16)).save(os.path.join(d, "const_view_traced.pt"))
    if not names or "const_shuffle" in names:
        torch.manual_seed(0)
        cs = ConstShuffle().eval()
        torch.jit.trace(cs, torch.randn(2, 1, 16, 16)).save(os.path.join(d, "const_shuffle_traced.pt"))
    if not names or "grouped" in names:
        traced_and_scripted(d, "grouped", Grouped())
    if not names or "everyday" in names:
        traced_and_scripted(d, "everyday", Everyday())
    if not names or "shuffle" in names:
        traced_and_scripted(d, "shuffle", Shuffle())
    if not names or "pooled" in names:
        traced_and_scripted(d, "pooled", Pooled())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
