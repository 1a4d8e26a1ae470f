#!/usr/bin/env bash
# Interop both ways: C++ zoo models load and run in Python (torch.jit.load)
# with the same outputs; models traced and scripted in Python load and run in
# C++ with the same outputs. Python is the venv's (//third_party:python), whose
# torch is the LibTorch slimfit links.
set -euo pipefail
helper="$1"
script="$2"
py="$3"
if ! "$py" -c "import torch" 2>/dev/null; then
  echo "FAIL: $py cannot import torch; run ./bootstrap.sh (installs the venv with torch)" >&2
  exit 1
fi
dir="${TEST_TMPDIR:-$(mktemp -d)}/interop"
mkdir -p "$dir"
echo "== C++ → Python"
"$helper" save-zoo "$dir"
OMP_NUM_THREADS=1 "$py" "$script" check-zoo "$dir"
echo "== Python → C++"
OMP_NUM_THREADS=1 "$py" "$script" make-python "$dir"
"$helper" check-python "$dir"
echo "PASS"
