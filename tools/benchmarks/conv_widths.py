"""How one convolution's time depends on its channel count, on this machine.

CPU kernels work in blocks of channels (oneDNN on AVX-512: 16 floats), so
time is a step function of the width, not proportional to it. Prints, for a
3x3 convolution with c input and c output channels, one thread:
  - training: forward + backward at 28x28, batch 128, NCHW and channels-last;
  - inference: forward at 14x14, batch 64 and batch 1, NCHW and channels-last.
Each figure is the fastest of 3 rounds.

  bazel run //third_party:python_run -- tools/benchmarks/conv_widths.py
"""
import time

import torch

torch.set_num_threads(1)


def timed(fn, n):
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1000


def train_ms(c, channels_last):
    conv = torch.nn.Conv2d(c, c, 3, padding=1, bias=False)
    x = torch.randn(128, c, 28, 28)
    if channels_last:
        conv = conv.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()

    def step():
        conv(x).sum().backward()

    step()
    return timed(step, 5)


def infer_ms(c, batch, channels_last):
    conv = torch.nn.Conv2d(c, c, 3, padding=1).eval()
    x = torch.randn(batch, c, 14, 14)
    if channels_last:
        conv = conv.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        conv(x)
        return timed(lambda: conv(x), 20 if batch > 1 else 200)


print(f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, 1 thread; ms, fastest of 3 rounds")
print("| channels | train b128 NCHW | train b128 CL | infer b64 NCHW | infer b64 CL | infer b1 NCHW | infer b1 CL |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for c in [8, 11, 12, 15, 16, 20, 24, 28, 32, 40, 48, 56, 64]:
    row = [train_ms(c, False), train_ms(c, True), infer_ms(c, 64, False), infer_ms(c, 64, True),
           infer_ms(c, 1, False), infer_ms(c, 1, True)]
    print(f"| {c} | " + " | ".join(f"{v:.3g}" for v in row) + " |")
