"""Writes model/testdata/export_linear.pt2: a torch.export program (torch 2.x's
.pt2 archive), which LibTorch cannot load or train; Model::Load must say so
and say what to do instead. Run with the venv's torch:

    bazel run //third_party:python_run -- model/testdata/make_pt2.py model/testdata/export_linear.pt2
"""
import sys

import torch

model = torch.nn.Sequential(torch.nn.Linear(2, 2))
program = torch.export.export(model, (torch.randn(1, 2),))
torch.export.save(program, sys.argv[1])
