"""The same compressed model in LibTorch and in ONNX Runtime, side by side in
one run: latency at batch 1 and 64 on one thread (timed in turns, each its
best round) and accuracy on the Fashion-MNIST test set, fp32 and int8.

  bazel run //export:runtime_benchmark -- --run_dir=$PWD/runs/mnv2_c2f

A level-2 run directory holds the int8 result (model.pt, model.onnx with
`export { formats: [TORCHSCRIPT, ONNX] }`) and its fp32 model
(model_trainable.pt); the fp32 ONNX file is exported here with
//tools:export, and LibTorch runs the fp32 model frozen (torch.jit.freeze,
batch norm folded) as slimfit deploys it. A level-1 run has only fp32.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import verify_onnx  # noqa: E402

FASHION = "/usr/share/datasets/fashion-mnist/"


def accuracy(logits, labels):
    return float((logits.argmax(1) == labels).mean() * 100)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--run_dir", required=True)
    p.add_argument("--export_tool", required=True)
    p.add_argument("--mean", type=float, default=0.2860)
    p.add_argument("--std", type=float, default=0.3530)
    a = p.parse_args()
    run = a.run_dir
    torch.backends.quantized.engine = "onednn"  # what slimfit's int8 models are made for
    images = verify_onnx.read_idx(FASHION + "t10k-images-idx3-ubyte.gz")
    labels = verify_onnx.read_idx(FASHION + "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    x = ((images.astype(np.float32) / 255.0 - a.mean) / a.std)[:, None, :, :]

    rows = []
    tmp = tempfile.mkdtemp()
    fp32_pt = os.path.join(run, "model_trainable.pt")
    int8_pt = os.path.join(run, "model.pt")
    quantized = any(n.kind().startswith("quantized::") for n in torch.jit.load(int8_pt).graph.nodes())
    pairs = []
    if os.path.exists(fp32_pt):
        fp32_onnx = os.path.join(tmp, "fp32.onnx")
        subprocess.run([a.export_tool, "--model=" + fp32_pt, "--format=onnx", "--out=" + fp32_onnx], check=True,
                       stdout=subprocess.DEVNULL)
        pairs.append(("fp32", fp32_pt, fp32_onnx, True))
    if quantized:
        pairs.append(("int8", int8_pt, os.path.join(run, "model.onnx"), False))
    for kind, pt, onnx_path, freeze in pairs:
        model = torch.jit.load(pt).eval()
        if freeze:
            model = torch.jit.freeze(model)
        sess = verify_onnx.session(onnx_path)
        t, o = verify_onnx.outputs(model, sess, x, 250)
        lat = verify_onnx.latency(model, sess, x)
        rows.append((kind, "LibTorch " + torch.__version__.split("+")[0], lat["libtorch_b1_ms"],
                     lat["libtorch_b64_ms"], accuracy(t, labels), os.path.getsize(pt)))
        rows.append((kind, "ONNX Runtime " + verify_onnx.ort.__version__, lat["onnxruntime_b1_ms"],
                     lat["onnxruntime_b64_ms"], accuracy(o, labels), os.path.getsize(onnx_path)))
        print(f"{kind}: argmax agreement {(t.argmax(1) == o.argmax(1)).mean():.4f} on 10000 test images")
    print(f"\n{run}: one thread, ms per call (best of 5 rounds, timed in turns)")
    print(f"| model | runtime | batch 1 ms | batch 64 ms | test accuracy | file KiB |")
    print(f"|---|---|---|---|---|---|")
    for kind, rt, b1, b64, acc, size in rows:
        print(f"| {kind} | {rt} | {b1:.3f} | {b64:.2f} | {acc:.2f} | {size / 1024:.1f} |")


if __name__ == "__main__":
    main()
