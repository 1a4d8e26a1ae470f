#!/usr/bin/env bash
# bootstrap.sh — installs every Debian package slimfit needs, and LibTorch:
# PyTorch's own wheel from PyPI (its torch/include and torch/lib are LibTorch)
# in a virtual environment kept once per machine outside the clone (version
# and place: third_party/libtorch.bzl). Idempotent: a second run installs
# nothing and only re-checks. Debian packages need root, or sudo.
#
#   ./bootstrap.sh            # install what is missing
#   ./bootstrap.sh --check    # only report what is missing (exit 1 if any)
set -euo pipefail

PACKAGES=(
  bazel-bootstrap          # Bazel 4.2.3 (WORKSPACE mode), pulls a JDK
  build-essential
  libabsl-dev              # Abseil 20220623
  libre2-dev
  libprotobuf-dev
  protobuf-compiler        # /usr/bin/protoc
  libgtest-dev
  libgmock-dev
  libbenchmark-dev
  libgloo-dev              # headers for c10d's ProcessGroupGloo (Gloo itself is in libtorch_cpu)
  python3-venv             # the venv LibTorch comes in (pyenv's python3 has venv already)
  zlib1g-dev               # reading the IDX .gz files directly
  libjpeg62-turbo-dev      # image folders: JPEG (libjpeg-turbo)
  libpng-dev               # image folders: PNG
  dataset-fashion-mnist    # the built-in default data set
  clang-14                 # --config=fuzz: libFuzzer targets
  libclang-rt-14-dev       # libFuzzer, ASan and UBSan runtimes for clang-14
  clang-format-14          # .ci/check_format: changed C++ lines formatted as .clang-format says
  libonnx-dev              # ONNX 1.12 protobufs and checker: //export:onnx
)

say() { printf '[bootstrap] %s\n' "$*"; }

# The LibTorch setting, read from the one file that holds it.
here=$(cd "$(dirname "$0")" && pwd)
setting() { sed -n "s/^$1 = \"\(.*\)\"$/\1/p" "$here/third_party/libtorch.bzl"; }
TORCH_VERSION=$(setting LIBTORCH_VERSION)
TORCHVISION_VERSION=$(setting TORCHVISION_VERSION)
VENV=$(setting LIBTORCH_VENV)
ORT_VERSION=$(setting ONNXRUNTIME_VERSION)
ONNX_PY_VERSION=$(setting ONNX_PY_VERSION)
VENV=${VENV/#\~/$HOME}
[[ -n "$TORCH_VERSION" && -n "$TORCHVISION_VERSION" && -n "$VENV" && -n "$ORT_VERSION" && -n "$ONNX_PY_VERSION" ]] || {
  echo "[bootstrap] third_party/libtorch.bzl: LIBTORCH_VERSION, TORCHVISION_VERSION, LIBTORCH_VENV, ONNXRUNTIME_VERSION or ONNX_PY_VERSION not found" >&2; exit 1; }

# Prints the torch version the venv's Python imports, or nothing.
venv_torch() {
  [[ -x "$VENV/bin/python3" ]] || return 0
  "$VENV/bin/python3" -c 'import torch, torchvision; print(torch.__version__.split("+")[0])' 2>/dev/null || true
}

# Prints "onnxruntime-version onnx-version" the venv's Python imports, or nothing.
venv_onnx() {
  [[ -x "$VENV/bin/python3" ]] || return 0
  "$VENV/bin/python3" -c 'import onnxruntime, onnx; print(onnxruntime.__version__, onnx.__version__)' 2>/dev/null || true
}

missing=()
for p in "${PACKAGES[@]}"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    :
  else
    missing+=("$p")
  fi
done

if [[ "${1:-}" == "--check" ]]; then
  bad=0
  if ((${#missing[@]})); then say "missing: ${missing[*]}"; bad=1
  else say "all ${#PACKAGES[@]} packages present"; fi
  found=$(venv_torch)
  if [[ "$found" == "$TORCH_VERSION" ]]; then
    say "libtorch: $found (PyTorch wheel) at $(ls -d "$VENV"/lib/python3*/site-packages/torch)"
  else
    say "libtorch: want $TORCH_VERSION in $VENV, found '${found:-nothing}'"; bad=1
  fi
  found_onnx=$(venv_onnx)
  if [[ "$found_onnx" == "$ORT_VERSION $ONNX_PY_VERSION" ]]; then
    say "onnxruntime, onnx: $found_onnx"
  else
    say "onnxruntime, onnx: want $ORT_VERSION $ONNX_PY_VERSION in $VENV, found '${found_onnx:-nothing}'"; bad=1
  fi
  exit $bad
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { say "not root and no sudo: run as root"; exit 1; }
  SUDO="sudo"
fi

if ((${#missing[@]})); then
  say "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  say "all ${#PACKAGES[@]} packages already installed"
fi

found=$(venv_torch)
if [[ "$found" == "$TORCH_VERSION" ]]; then
  say "libtorch: torch $found already in $VENV"
else
  # The wheel (~530 MB) and its CUDA libraries from PyPI: ~4.7 GB, ~2 min.
  # Pinned to the version the GPU machine runs, so binaries built here run
  # there against its own libtorch.
  say "libtorch: installing torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION into $VENV"
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  python=$(command -v python3)
  "$python" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check \
    "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" numpy
  found=$(venv_torch)
  [[ "$found" == "$TORCH_VERSION" ]] || { say "libtorch: $VENV/bin/python3 cannot import torch $TORCH_VERSION"; exit 1; }
fi

found_onnx=$(venv_onnx)
if [[ "$found_onnx" == "$ORT_VERSION $ONNX_PY_VERSION" ]]; then
  say "onnxruntime, onnx: $found_onnx already in $VENV"
else
  # ~20 MB from PyPI: runs exported .onnx files in //export's tests.
  say "onnxruntime, onnx: installing onnxruntime==$ORT_VERSION onnx==$ONNX_PY_VERSION into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check \
    "onnxruntime==$ORT_VERSION" "onnx==$ONNX_PY_VERSION"
  found_onnx=$(venv_onnx)
  [[ "$found_onnx" == "$ORT_VERSION $ONNX_PY_VERSION" ]] || { say "onnxruntime: $VENV/bin/python3 cannot import onnxruntime $ORT_VERSION"; exit 1; }
fi

say "bazel: $(command -v bazel || echo 'not found')"
say "libtorch: $found at $(ls -d "$VENV"/lib/python3*/site-packages/torch)"
say "fashion-mnist: $(ls /usr/share/datasets/fashion-mnist 2>/dev/null | tr '\n' ' ')"
say "done"
