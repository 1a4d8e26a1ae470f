"""Traces and scripts torchvision's classification architectures (weights=None:
structure is what pruning needs) for the pruning sweep.

    bazel run //third_party:python_run -- tools/torchvision/make_models.py OUT_DIR [names...]

Writes OUT_DIR/<name>_traced.pt and <name>_scripted.pt (when scripting works)
and prints one line per model. Input: [1, 3, S, S] with S=128 (inception_v3: 299).
"""
import os
import sys

import torch
import torchvision.models as tvm

MODELS = [
    "alexnet", "vgg11_bn", "resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2",
    "densenet121", "squeezenet1_1", "googlenet", "inception_v3", "mobilenet_v2",
    "mobilenet_v3_small", "mnasnet0_5", "shufflenet_v2_x0_5", "efficientnet_b0",
    "regnet_x_400mf", "convnext_tiny",
]


def main(out, names):
    os.makedirs(out, exist_ok=True)
    for name in names or MODELS:
        torch.manual_seed(0)
        kwargs = {"weights": None}
        if name in ("googlenet", "inception_v3"):
            kwargs["aux_logits"] = False
            kwargs["init_weights"] = True
        m = getattr(tvm, name)(**kwargs).eval()
        size = 299 if name == "inception_v3" else 128
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            torch.jit.trace(m, x).save(os.path.join(out, name + "_traced.pt"))
        status = "traced"
        try:
            torch.jit.script(m).save(os.path.join(out, name + "_scripted.pt"))
            status += " scripted"
        except Exception as e:  # some architectures do not script
            status += " (script failed: %s)" % str(e).splitlines()[0][:60]
        print(f"{name} {size} {status}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
