#!/usr/bin/env python3
"""slimfit's result beside its peers, measured in one run on one model.

The model is experiments/python/train_and_trace.py's `Mixed` (residual add,
depthwise convs, concatenation, a squeeze-excitation gate, flatten -> linear),
trained and traced in Python by that script. Rows:

  reference        the traced model as trained
  slimfit          the model `//tools:compress` wrote to --run_dir (model.pt)
  torch-pruning    Torch-Pruning (group L2 magnitude, uniform per layer, fc2
                   kept) pruned step by step until its MACs are at most the
                   reference's / --macs_ratio (default: slimfit's ratio), then
                   fine-tuned --epochs with plain cross-entropy (SGD momentum
                   0.9, cosine lr from --lr), on all 60,000 training images as
                   the reference was. Torch-Pruning 1.6 fails on this model's
                   depthwise conv with channel multiplier 2 (IndexError in its
                   importance); the row then says so and keeps --tp_keep (the
                   layers coupled to that conv) as well, pruning the rest
  pytorch-int8     PyTorch's own post-training int8 (FX graph mode, onednn
                   qconfig, 1,024 training images to calibrate) of the
                   reference

Every row is scored on the 10,000 test images (which neither slimfit nor the
fine-tune chose on), counted with torch.utils.flop_counter (conv + matmul
MACs, the same counter for every row), saved with torch.jit to measure the
file, and timed in turns (batch 1 and 64, one thread, median of --runs after
warm-up) so the latency ratios come from the same minutes.

    bazel run //third_party:python_run -- experiments/python/train_and_trace.py --epochs 2
    bazel run //tools:compress -- --experiment=experiments/fashion_mnist_python_traced.pbtxt --output_dir=runs/python_l1 --level=1
    bazel run //third_party:python_run -- search/benchmark/peers.py --run_dir=runs/python_l1

Torch-Pruning is not part of slimfit's set-up: install it into the venv once
with `bazel run //third_party:python_run -- -m pip install torch-pruning==1.6.1`.
"""
import argparse
import copy
import importlib.util
import io
import json
import os
import statistics
import sys
import time
import warnings

import torch
from torch.utils.flop_counter import FlopCounterMode

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def load_script(path):
    spec = importlib.util.spec_from_file_location("train_and_trace", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def data(script):
    norm = lambda a: torch.from_numpy(a.copy()).float().div(255).sub(0.2860).div(0.3530).unsqueeze(1)
    x = norm(script.idx("train-images-idx3-ubyte.gz"))
    y = torch.from_numpy(script.idx("train-labels-idx1-ubyte.gz").copy()).long()
    xt = norm(script.idx("t10k-images-idx3-ubyte.gz"))
    yt = torch.from_numpy(script.idx("t10k-labels-idx1-ubyte.gz").copy()).long()
    return x, y, xt, yt


@torch.no_grad()
def accuracy(model, xt, yt):
    model.eval()
    right = sum((model(xt[i:i + 500]).argmax(1) == yt[i:i + 500]).sum().item() for i in range(0, len(xt), 500))
    return 100.0 * right / len(xt)


@torch.no_grad()
def macs(model):
    model.eval()
    with FlopCounterMode(display=False) as fc:
        model(torch.randn(1, 1, 28, 28))
    return fc.get_total_flops() // 2


def file_bytes(scripted):
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    return buf.getbuffer().nbytes


def fine_tune(script, model, x, y, epochs, lr):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    steps = epochs * (len(x) // 128)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(0)
    for epoch in range(epochs):
        t0 = time.time()
        script.train_epoch(model, x, y, opt, sched, generator=g)
        print(f"  torch-pruning fine-tune epoch {epoch + 1}/{epochs}: {time.time() - t0:.0f} s", flush=True)


def prune_with_torch_pruning(script, reference_sd, target_macs, keep):
    """Prunes step by step toward target_macs; returns (model, what was kept, error of the plain try)."""
    import torch_pruning as tp  # noqa: PLC0415 (optional peer)
    error = None
    for kept in ([], keep):
        net = script.Mixed()
        net.load_state_dict(reference_sd)
        net.eval()
        modules = dict(net.named_modules())
        steps = 200
        try:
            pruner = tp.pruner.MetaPruner(net, torch.randn(1, 1, 28, 28),
                                          importance=tp.importance.GroupMagnitudeImportance(p=2),
                                          pruning_ratio=0.95, iterative_steps=steps,
                                          ignored_layers=[net.fc2] + [modules[k] for k in kept])
            for step in range(steps):
                pruner.step()
                if macs(net) <= target_macs:
                    break
        except Exception as e:  # noqa: BLE001 (a peer's failure is a result)
            error = f"{type(e).__name__}: {e}"
            print(f"  torch-pruning failed with {kept or 'nothing'} kept: {error}", flush=True)
            continue
        print(f"  torch-pruning: {step + 1} of {steps} steps, {macs(net)} MACs (target {target_macs}); "
              f"kept {kept or 'only fc2'}", flush=True)
        return net.eval(), kept, error
    return None, keep, error


def pytorch_int8(script, reference_sd, x):
    from torch.ao.quantization import get_default_qconfig_mapping  # noqa: PLC0415
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx  # noqa: PLC0415
    torch.backends.quantized.engine = "onednn"
    net = script.Mixed()
    net.load_state_dict(reference_sd)
    net.eval()
    prepared = prepare_fx(net, get_default_qconfig_mapping("onednn"), (x[:2],))
    with torch.no_grad():
        for i in range(0, 1024, 128):
            prepared(x[i:i + 128])
    return convert_fx(prepared)


def latency(models, runs):
    """Median ms at batch 1 and 64 per model, timed in turns."""
    torch.set_num_threads(1)
    out = {name: {1: [], 64: []} for name in models}
    inputs = {1: torch.randn(1, 1, 28, 28), 64: torch.randn(64, 1, 28, 28)}
    with torch.no_grad():
        for name, m in models.items():
            for b in (1, 64):
                for _ in range(10):
                    m(inputs[b])
        for _ in range(runs):
            for name, m in models.items():
                for b in (1, 64):
                    t0 = time.perf_counter()
                    m(inputs[b])
                    out[name][b].append((time.perf_counter() - t0) * 1000)
    return {name: (statistics.median(v[1]), statistics.median(v[64])) for name, v in out.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run_dir", required=True, help="a //tools:compress output directory (model.pt, report.json)")
    p.add_argument("--reference", default="runs/python/mixed_traced.pt")
    p.add_argument("--script", default=os.path.join(ROOT, "experiments/python/train_and_trace.py"))
    p.add_argument("--macs_ratio", type=float, default=0, help="Torch-Pruning's MAC target (0: slimfit's ratio)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--threads", type=int, default=1, help="threads for training (timing uses one)")
    p.add_argument("--tp_keep", default="stem.0,branch.0,pw.0,dw2.0",
                   help="layers Torch-Pruning leaves alone when it fails with only fc2 kept")
    a = p.parse_args()
    warnings.filterwarnings("ignore")  # FX quantization's deprecation notes, TorchScript's
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    for f in (a.reference, os.path.join(a.run_dir, "model.pt")):
        if not os.path.exists(f):
            sys.exit(f"peers: {f} not found (see this script's docstring for the commands that make it)")
    try:
        import torch_pruning as tp_module  # noqa: PLC0415
    except ImportError:
        sys.exit("peers: torch_pruning is not installed; "
                 "bazel run //third_party:python_run -- -m pip install torch-pruning==1.6.1")
    script = load_script(a.script)
    x, y, xt, yt = data(script)
    reference = torch.jit.load(a.reference).eval()
    slimfit = torch.jit.load(os.path.join(a.run_dir, "model.pt")).eval()
    report = json.load(open(os.path.join(a.run_dir, "report.json")))
    ref_macs = macs(reference)
    ratio = a.macs_ratio or report["reference"]["macs"] / report["result"]["macs"]
    print(f"reference {ref_macs} MACs; Torch-Pruning aims at {ratio:.2f}x fewer "
          f"({'--macs_ratio' if a.macs_ratio else 'slimfit report.json'})", flush=True)
    sd = {k: v for k, v in reference.state_dict().items()}
    tp_model, tp_kept, tp_error = prune_with_torch_pruning(script, sd, int(ref_macs / ratio),
                                                           [k for k in a.tp_keep.split(",") if k])
    tp_seconds = 0
    if tp_model is not None:
        t0 = time.time()
        fine_tune(script, tp_model, x, y, a.epochs, a.lr)
        tp_seconds = time.time() - t0
    int8 = pytorch_int8(script, sd, x)
    models = {"reference": reference, "slimfit": slimfit}
    if tp_model is not None:
        models["torch-pruning"] = torch.jit.trace(tp_model.eval(), xt[:2])
    models["pytorch-int8"] = torch.jit.trace(int8, xt[:2])
    times = latency(models, a.runs)
    ref_acc = accuracy(reference, xt, yt)
    rows = []
    for name, m in models.items():
        acc = accuracy(m, xt, yt)
        n_macs = macs(m)
        size = file_bytes(m)
        b1, b64 = times[name]
        rows.append((name, acc, acc - ref_acc, ref_macs / max(1, n_macs), size, b1, b64))
    ref_size, ref_b1, ref_b64 = rows[0][4], rows[0][5], rows[0][6]
    print()
    print(f"torch {torch.__version__}, torch_pruning {tp_module.__version__}; test = the 10,000 t10k images; "
          f"torch-pruning fine-tune {a.epochs} epoch(s) at lr {a.lr} ({tp_seconds:.0f} s); "
          f"slimfit: {report['result']['description']}")
    if tp_error:
        print(f"torch-pruning with only fc2 kept failed ({tp_error}); "
              f"its row keeps {', '.join(tp_kept)} (--tp_keep) as well")
    print(f"{'row':<14} {'test acc':>8} {'vs ref':>7} {'MACs':>7} {'size':>7} {'KiB':>8} "
          f"{'b1 ms':>7} {'b1':>6} {'b64 ms':>7} {'b64':>6}")
    for name, acc, d, mr, size, b1, b64 in rows:
        # Quantized kernels are not counted by the flop counter: no MAC ratio for int8.
        mac_text = f"{mr:6.2f}x" if name != "pytorch-int8" else f"{'—':>7}"
        print(f"{name:<14} {acc:8.2f} {d:+7.2f} {mac_text} {ref_size / size:6.2f}x {size / 1024:8.1f} "
              f"{b1:7.3f} {ref_b1 / b1:5.2f}x {b64:7.2f} {ref_b64 / b64:5.2f}x")


if __name__ == "__main__":
    main()
