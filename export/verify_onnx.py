"""Runs a TorchScript model in LibTorch and its ONNX export in ONNX Runtime on
the same inputs and says whether they agree (export/onnx.h's contract).

  python export/verify_onnx.py --model M.pt --onnx M.onnx --kind fp32
  python export/verify_onnx.py --model M.pt --onnx M.onnx --kind int8 \
      --images /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz \
      --labels /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz \
      --mean 0.2860 --std 0.3530
  python export/verify_onnx.py ... --latency     # also: b1 / b64 latency, one thread, side by side
  python export/verify_onnx.py --model M.pt --onnx M.onnx --kind int8 --random 1 --latency --no_checks

Inputs: the IDX images (normalized with --mean / --std), or --random N
samples of normal noise in the ONNX input's shape. Checks, exit 1 when one
fails: fp32 outputs within --max_rel (max |onnx - torch| / max |torch|,
default 1e-4); int8 (and fp32) argmax agreement >= --min_agreement (default
0.99) and, with labels, accuracy within --max_accuracy_gap points (0.3).
--no_checks: the figures only, exit 0 (for timing: //tools:compress's
report). Prints one JSON object (the figures, with the two runtimes'
versions) as its last line; --figures FILE also writes the numbers as
'name value' lines (for tests in C++).
"""

import argparse
import gzip
import json
import struct
import sys
import time

import numpy as np
import onnxruntime as ort
import torch


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def outputs(model, sess, inputs, batch):
    name = sess.get_inputs()[0].name
    torch_out, onnx_out = [], []
    with torch.no_grad():
        for i in range(0, len(inputs), batch):
            x = inputs[i : i + batch]
            y = model(torch.from_numpy(x))
            o = sess.run(None, {name: x})
            if isinstance(y, tuple):  # every tensor of a (named) tuple; ONNX drops None elements
                y = torch.cat([t.flatten(1) for t in y if t is not None], 1)
                o = [np.concatenate([t.reshape(len(t), -1) for t in o], 1)]
            torch_out.append(y.numpy())
            onnx_out.append(o[0])
    return np.concatenate(torch_out), np.concatenate(onnx_out)


def best_ms(fn, rounds, calls):
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e3


def latency(model, sess, sample):
    """ms per call at batch 1 and 64, one thread, timed in turns (each keeps its best round)."""
    name = sess.get_inputs()[0].name
    torch.set_num_threads(1)
    result = {}
    with torch.no_grad():
        for b in (1, 64):
            x = np.repeat(sample[:1], b, axis=0)
            xt = torch.from_numpy(x)
            for _ in range(3):  # warm-up (the profiling executor optimizes on the first calls)
                model(xt)
                sess.run(None, {name: x})
            calls = 50 if b == 1 else 5
            t, o = float("inf"), float("inf")
            for _ in range(5):
                t = min(t, best_ms(lambda: model(xt), 1, calls))
                o = min(o, best_ms(lambda: sess.run(None, {name: x}), 1, calls))
            result[f"libtorch_b{b}_ms"] = round(t, 4)
            result[f"onnxruntime_b{b}_ms"] = round(o, 4)
    return result


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--onnx", required=True)
    p.add_argument("--kind", choices=["fp32", "int8"], required=True)
    p.add_argument("--images")
    p.add_argument("--labels")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--mean", type=float, default=0.0)
    p.add_argument("--std", type=float, default=1.0)
    p.add_argument("--random", type=int, default=0)
    p.add_argument("--batch", type=int, default=250)
    p.add_argument("--max_rel", type=float, default=1e-4)
    p.add_argument("--min_agreement", type=float, default=0.99)
    p.add_argument("--max_accuracy_gap", type=float, default=0.3)
    p.add_argument("--engine", default="onednn",
                   help="LibTorch's quantized engine for int8 models: slimfit quantizes under onednn (its default); "
                        "docs/export.md compares the engines")
    p.add_argument("--latency", action="store_true")
    p.add_argument("--no_checks", action="store_true", help="report the figures, check nothing")
    p.add_argument("--figures", help="also write the figures here, one 'name value' line each")
    a = p.parse_args()

    torch.set_num_threads(1)
    torch.backends.quantized.engine = a.engine  # before loading: int8 weights are packed for it
    model = torch.jit.load(a.model).eval()
    sess = session(a.onnx)
    labels = None
    if a.images:
        images = read_idx(a.images)
        if a.limit:
            images = images[: a.limit]
        x = ((images.astype(np.float32) / 255.0 - a.mean) / a.std)[:, None, :, :]
        if a.labels:
            labels = read_idx(a.labels)[: len(x)].astype(np.int64)
    elif a.random:
        shape = [d if isinstance(d, int) else a.random for d in sess.get_inputs()[0].shape]
        shape[0] = a.random
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    else:
        p.error("give --images or --random")

    t, o = outputs(model, sess, x, a.batch)
    if t.shape != o.shape:
        print(f"shape mismatch: libtorch {t.shape}, onnxruntime {o.shape}")
        return 1
    figures = {
        "model": a.model,
        "kind": a.kind,
        "samples": int(len(x)),
        "max_rel": float(np.abs(o - t).max() / max(np.abs(t).max(), 1e-12)),
        "argmax_agreement": float((o.argmax(1) == t.argmax(1)).mean()),
        "libtorch_version": torch.__version__.split("+")[0],
        "onnxruntime_version": ort.__version__,
    }
    failures = []
    if labels is not None:
        figures["libtorch_accuracy"] = float((t.argmax(1) == labels).mean() * 100)
        figures["onnxruntime_accuracy"] = float((o.argmax(1) == labels).mean() * 100)
        gap = abs(figures["libtorch_accuracy"] - figures["onnxruntime_accuracy"])
        if gap > a.max_accuracy_gap:
            failures.append(f"accuracy gap {gap:.2f} > {a.max_accuracy_gap}")
    if a.kind == "fp32" and figures["max_rel"] > a.max_rel:
        failures.append(f"max relative difference {figures['max_rel']:.3g} > {a.max_rel}")
    if figures["argmax_agreement"] < a.min_agreement:
        failures.append(f"argmax agreement {figures['argmax_agreement']:.4f} < {a.min_agreement}")
    if a.latency:
        figures.update(latency(model, sess, x))
    if a.no_checks:
        failures = []
    for f in failures:
        print("FAIL:", f)
    print(json.dumps(figures))
    if a.figures:
        with open(a.figures, "w") as f:
            for k, v in figures.items():
                if isinstance(v, (int, float)):
                    f.write(f"{k} {v!r}\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
