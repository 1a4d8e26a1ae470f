"""The Python half of the interop test (run with the venv's Python, //third_party:python).

    interop_test.py check-zoo DIR     loads every C++ zoo model (and its pruned copy)
                                      with torch.jit.load, compares outputs with
                                      C++'s, reads the metadata
    interop_test.py make-python DIR   traces and scripts a model with a residual add,
                                      a depthwise conv, a concatenation and
                                      flatten -> linear; saves it, its outputs, a
                                      tensor-list dataset and a state_dict
"""
import json
import os
import sys

import torch
import torch.jit._pickle  # build_tensorlist, allowed in load_tensors
import torch.nn as nn
import torch.nn.functional as F

ZOO = ["lenet5", "mobilenetv2_small", "resnet_small", "vgg_small"]


def load_tensors(path):
    """A tensor list the C++ helper wrote with torch::pickle_save. Its pickle
    names torch.jit._pickle.build_tensorlist, which torch >= 2.6's default
    torch.load(weights_only=True) refuses; allow exactly that global."""
    with torch.serialization.safe_globals([torch.jit._pickle.build_tensorlist]):
        return torch.load(path)


def check_zoo(d):
    for name in ZOO:
        extra = {"slimfit_metadata.json": ""}
        m = torch.jit.load(os.path.join(d, name + ".pt"), _extra_files=extra)
        m.eval()
        x, y = load_tensors(os.path.join(d, name + "_io.pt"))
        with torch.no_grad():
            out = m(x)
        diff = (out - y).abs().max().item()
        meta = json.loads(extra["slimfit_metadata.json"])
        print(f"{name}: max |Python - C++| = {diff:.3g}, metadata name={meta['name']} "
              f"inputs={meta['inputs'][0]['shape']}")
        assert diff <= 1e-5, f"{name}: outputs differ by {diff}"
        assert meta["name"] == name
        assert [int(v) for v in meta["inputs"][0]["shape"]] == [1, 1, 28, 28]
        # The model trains in Python too: one SGD step changes the loss.
        m.train()
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        loss = F.cross_entropy(m(x), torch.tensor([0, 1, 2, 3]))
        loss.backward()
        opt.step()
        # The same model with half its channels removed by slimfit's surgery:
        # plain TorchScript, same outputs in Python as in C++.
        p = torch.jit.load(os.path.join(d, name + "_pruned.pt")).eval()
        xp, yp = load_tensors(os.path.join(d, name + "_pruned_io.pt"))
        with torch.no_grad():
            pdiff = (p(xp) - yp).abs().max().item()
        nparams = sum(t.numel() for t in p.parameters())
        print(f"{name}_pruned: max |Python - C++| = {pdiff:.3g}, {nparams} parameters")
        assert pdiff <= 1e-5, f"{name}_pruned: outputs differ by {pdiff}"
        assert nparams < sum(t.numel() for t in m.parameters())
    check_written(d)


def check_written(d):
    """What slimfit writes (interop_helper's SaveWritten): each file loads with
    torch.jit.load and gives C++'s outputs. The int8 model runs on the engine
    C++ quantized it with (its kernels are that engine's)."""
    engine = open(os.path.join(d, "written_engine.txt")).read().strip()
    torch.backends.quantized.engine = engine
    kinds = {}
    for name in ["fp32_frozen", "int8", "weight_only8", "weight_only4"]:
        m = torch.jit.load(os.path.join(d, f"written_{name}.pt")).eval()
        x, y = load_tensors(os.path.join(d, f"written_{name}_io.pt"))
        with torch.no_grad():
            diff = (m(x) - y).abs().max().item()
        quantized = sorted(k for k in _all_kinds(m) if k.startswith("quantized::"))
        print(f"written_{name}: max |Python - C++| = {diff:.3g}, quantized ops: {quantized}")
        assert diff <= 1e-5, f"written_{name}: outputs differ by {diff}"
        kinds[name] = quantized
    assert "quantized::conv2d_relu" in kinds["int8"] or "quantized::conv2d" in kinds["int8"], kinds["int8"]
    assert kinds["fp32_frozen"] == [], kinds["fp32_frozen"]


def _all_kinds(m):
    """Every node kind in the module's forward, through calls into submodules."""
    kinds = set()
    graphs = [m.forward.graph]
    for sub in m.modules():
        if hasattr(sub, "forward") and hasattr(sub.forward, "graph"):
            graphs.append(sub.forward.graph)
    for g in graphs:
        stack = list(g.nodes())
        while stack:
            n = stack.pop()
            kinds.add(n.kind())
            for b in n.blocks():
                stack.extend(b.nodes())
    return kinds


class Net(nn.Module):
    """Residual add, depthwise conv, concatenation, flatten -> linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.branch_a = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8),
                                nn.ReLU6())
        self.pw = nn.Sequential(nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8))
        self.mix = nn.Sequential(nn.Conv2d(16, 12, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(12),
                                 nn.ReLU())
        self.fc = nn.Linear(12 * 14 * 14, 10)

    def forward(self, x):
        x = self.stem(x)
        x = F.relu(x + self.branch_a(x))          # residual add
        y = self.pw(self.dw(x))                   # depthwise then pointwise
        z = torch.cat([x, y], dim=1)              # concatenation
        z = self.mix(z)
        return self.fc(torch.flatten(z, 1))       # flatten -> linear


def make_python(d):
    torch.manual_seed(0)
    net = Net()
    # Non-trivial batch-norm statistics.
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(8, 1, 28, 28) * 2 + 0.5)
    net.eval()
    x = torch.randn(4, 1, 28, 28)
    traced = torch.jit.trace(net, x)
    scripted = torch.jit.script(net)
    traced.save(os.path.join(d, "py_traced.pt"))
    scripted.save(os.path.join(d, "py_scripted.pt"))
    with torch.no_grad():
        torch.save([x, traced(x), scripted(x)], os.path.join(d, "py_io.pt"))
    torch.save([torch.randn(40, 1, 28, 28), torch.randint(0, 10, (40,))], os.path.join(d, "py_data.pt"))
    torch.save(net.state_dict(), os.path.join(d, "py_state_dict.pt"))
    print("wrote py_traced.pt, py_scripted.pt, py_io.pt, py_data.pt, py_state_dict.pt")


if __name__ == "__main__":
    {"check-zoo": check_zoo, "make-python": make_python}[sys.argv[1]](sys.argv[2])
