#!/usr/bin/env bash
# bootstrap.sh — installs every Debian package slimfit needs. Idempotent: a
# second run installs nothing and only re-checks. Runs as root, or via sudo.
#
#   ./bootstrap.sh            # install what is missing
#   ./bootstrap.sh --check    # only report what is missing (exit 1 if any)
set -euo pipefail

PACKAGES=(
  bazel-bootstrap          # Bazel 4.2.3 (WORKSPACE mode), pulls a JDK
  build-essential
  libtorch-dev             # LibTorch 1.13.1, CPU, with c10d/Gloo and oneDNN
  libabsl-dev              # Abseil 20220623
  libre2-dev
  libprotobuf-dev
  protobuf-compiler        # /usr/bin/protoc
  libgtest-dev
  libgmock-dev
  libbenchmark-dev
  libgloo-dev              # headers for c10d's ProcessGroupGloo
  libopenblas0-pthread     # fast BLAS for LibTorch (the reference BLAS is ~17x slower on Linear)
  zlib1g-dev               # reading the IDX .gz files directly
  dataset-fashion-mnist    # the built-in default data set
  python3-torch            # interop tests: /usr/bin/python3 -c 'import torch'
  python3-torchvision      # tools/torchvision/sweep.sh (pruning every torchvision architecture)
  clang-14                 # --config=fuzz: libFuzzer targets
  libclang-rt-14-dev       # libFuzzer, ASan and UBSan runtimes for clang-14
)

say() { printf '[bootstrap] %s\n' "$*"; }

missing=()
for p in "${PACKAGES[@]}"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    :
  else
    missing+=("$p")
  fi
done

if [[ "${1:-}" == "--check" ]]; then
  if ((${#missing[@]})); then say "missing: ${missing[*]}"; exit 1; fi
  say "all ${#PACKAGES[@]} packages present"; exit 0
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

say "bazel: $(command -v bazel || echo 'not found')"
say "libtorch: $(dpkg-query -W -f='${Version}' libtorch-dev)"
say "fashion-mnist: $(ls /usr/share/datasets/fashion-mnist 2>/dev/null | tr '\n' ' ')"
say "done"
