#!/usr/bin/env python3
"""PyTorch's own post-training int8 quantization of a TorchScript model.

The reference slimfit's quantizer is compared against (benchmark and tests):
torch.ao.quantization.quantize_jit with get_default_qconfig(engine) —
HistogramObserver activations, per-channel symmetric weights — calibrated on
the first batches of the Fashion-MNIST / MNIST training images, evaluated on
the test images, saved as TorchScript.

  bazel run //third_party:python_run -- quantizers/pytorch/ptq_reference.py --model IN.pt --out OUT.pt \
      [--data_dir /usr/share/datasets/fashion-mnist] [--engine onednn] \
      [--calibration_batches 32] [--batch_size 64] [--test_samples 10000]

Prints one JSON line: {"accuracy": ..., "float_accuracy": ..., "seconds": ...}.
"""
import argparse
import gzip
import json
import os
import struct
import time

import numpy as np
import torch
from torch.ao.quantization import get_default_qconfig, quantize_jit


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    _, _, dims = struct.unpack(">HBB", data[:4])
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def find(data_dir, stem):
    for name in (stem + ".gz", stem):
        p = os.path.join(data_dir, name)
        if os.path.exists(p):
            return p
    raise SystemExit("ptq_reference: %s(.gz) not found in %s" % (stem, data_dir))


def images(data_dir, split, mean, std):
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(find(data_dir, prefix + "-images-idx3-ubyte")).astype(np.float32) / 255.0
    y = read_idx(find(data_dir, prefix + "-labels-idx1-ubyte")).astype(np.int64)
    x = (x - mean) / std
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


def accuracy(model, x, y, batch_size):
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out = model(x[i:i + batch_size])
            correct += int((out.argmax(1) == y[i:i + batch_size]).sum())
    return 100.0 * correct / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--data_dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--engine", default="onednn", choices=["onednn", "x86", "fbgemm", "qnnpack"])
    ap.add_argument("--calibration_batches", type=int, default=32)
    ap.add_argument("--batch_size", type=int, default=64)
    ap.add_argument("--test_samples", type=int, default=10000)
    ap.add_argument("--mean", type=float, default=0.2860)
    ap.add_argument("--std", type=float, default=0.3530)
    ap.add_argument("--no_freeze", action="store_true",
                    help="quantize the model as loaded (quantize_jit folds batch norm only into "
                         "torch.nn.Conv2d / BatchNorm2d submodule pairs)")
    args = ap.parse_args()

    torch.backends.quantized.engine = args.engine
    torch.set_num_threads(1)
    model = torch.jit.load(args.model).eval()
    train_x, _ = images(args.data_dir, "train", args.mean, args.std)
    test_x, test_y = images(args.data_dir, "test", args.mean, args.std)
    test_x, test_y = test_x[:args.test_samples], test_y[:args.test_samples]

    def calibrate(m, batches):
        with torch.no_grad():
            for b in range(batches):
                m(train_x[b * args.batch_size:(b + 1) * args.batch_size])

    start = time.time()
    # torch.jit.freeze folds batch norm into the convolutions whatever the
    # module classes are; quantize_jit's own folding matches only
    # torch.nn.Conv2d → BatchNorm2d submodules.
    prepared = model if args.no_freeze else torch.jit.freeze(model)
    q = quantize_jit(prepared, {"": get_default_qconfig(args.engine)}, calibrate, [args.calibration_batches])
    seconds = time.time() - start
    torch.jit.save(q, args.out)
    print(json.dumps({
        "accuracy": accuracy(q, test_x, test_y, 256),
        "float_accuracy": accuracy(model, test_x, test_y, 256),
        "seconds": round(seconds, 2),
    }))


if __name__ == "__main__":
    main()
