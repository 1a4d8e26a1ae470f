"""Channels-last vs NCHW per channel width: the table in model/weight_layout.h.

One conv3x3-bn-relu pair of `width` channels (and a stem of 1, 3 or 4 input
channels into 16 or 32), batch 128, forward + backward, 1 thread, best of 6
timed runs; prints channels-last time / NCHW time.

    bazel run //third_party:python_run -- trainer/benchmark/layout_widths.py
"""
import time

import torch
import torch.nn as nn


def step_ms(cin, width, side, channels_last):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(cin, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                      nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()).train()
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
    x = torch.randn(128, cin, side, side)
    times = []
    for _ in range(7):
        start = time.perf_counter()
        m(x).sum().backward()
        times.append(time.perf_counter() - start)
    return min(times[1:]) * 1000


def main():
    torch.set_num_threads(1)
    widths = [4, 5, 8, 9, 11, 12, 16, 20, 24, 32, 46, 48, 64]
    print("width  " + " ".join(f"{w:5d}" for w in widths))
    for side in [28, 14, 7]:
        ratios = [step_ms(w, w, side, True) / step_ms(w, w, side, False) for w in widths]
        print(f"{side}x{side}".ljust(7) + " ".join(f"{r:5.2f}" for r in ratios), flush=True)
    for cin in [1, 3, 4]:
        for width in [16, 32]:
            r = step_ms(cin, width, 32, True) / step_ms(cin, width, 32, False)
            print(f"stem {cin} -> {width} at 32x32: {r:.2f}", flush=True)


if __name__ == "__main__":
    main()
