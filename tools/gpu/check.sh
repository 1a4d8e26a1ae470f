#!/usr/bin/env bash
# The GPU check (docs/gpu.md), in two halves, because the lent GPU machine
# has no Bazel and cannot fetch anything:
#
#   tools/gpu/check.sh pack    # here: build, then copy the binaries and the
#                              # shared libraries they need (not LibTorch's)
#                              # into gpu_bundle/ (kept under 64 MiB)
#   tools/gpu/check.sh run     # there, in one device call: run them against
#                              # that machine's own LibTorch (its python3's
#                              # torch, the version pinned in third_party/
#                              # libtorch.bzl) and print what docs/gpu.md records
#
# `pack` builds with --config=cuda (the tools link NCCL). `run` prints, in
# order: the device; the gpu-tagged tests (one GPU: not multi_gpu); the CUDA
# kernels against LibTorch's ops (kernels_benchmark: microseconds and the
# ratio); a resnet_small epoch on the CPU and on the GPU (`train`, same data
# and seed); a short `compress` on the GPU (tools/gpu/experiment.pbtxt), its
# result scored again on the CPU. About 8 minutes on an H200 machine (not yet
# measured). It exits non-zero when a test fails or a step errs.
set -uo pipefail
bundle="${SLIMFIT_GPU_BUNDLE:-gpu_bundle}"
gpu_tests=(//kernels:kernels_gpu_test //distributed:nccl_gpu_test //trainer:trainer_gpu_test //search:engine_gpu_test)
tools=(//tools:train //tools:evaluate //tools:compress //kernels:kernels_benchmark)
path() { local l="${1#//}"; echo "${l/://}"; }  # //a/b:c -> a/b/c

pack() {
  bazel build --config=cuda "${gpu_tests[@]}" "${tools[@]}" 2>&1 | tail -2 || exit 1
  rm -rf "$bundle" && mkdir -p "$bundle/bin" "$bundle/lib"
  for label in "${gpu_tests[@]}" "${tools[@]}"; do
    t=$(path "$label")
    cp -L "bazel-bin/$t" "$bundle/bin/$(basename "$t")" || exit 1
    # Every shared library it loads, except LibTorch's own (the machine's
    # torch brings them) and the C and C++ runtimes.
    ldd "bazel-bin/$t" | awk '$3 ~ /^\// { print $3 }' |
      grep -v -E '/torch/lib/|/nvidia/|/(libc|libm|libdl|librt|libpthread|ld-linux[^/]*|libstdc\+\+|libgcc_s)\.so' |
      while read -r lib; do cp -Ln "$lib" "$bundle/lib/"; done
  done
  mkdir -p "$bundle/data" && cp -L /usr/share/datasets/fashion-mnist/*.gz "$bundle/data/" 2>/dev/null
  du -sh "$bundle"
  local kib; kib=$(du -sk "$bundle" | cut -f1)
  [ "$kib" -lt $((64 * 1024)) ] || { echo "gpu_bundle is ${kib} KiB, over 64 MiB" >&2; exit 1; }
}

run() {
  local torch_lib
  torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))') || exit 1
  # The CUDA runtime, NCCL and friends the kernels and --config=cuda binaries
  # name directly: beside torch, in the wheel's nvidia/*/lib (here they were
  # found through an rpath into this machine's venv, which is not there).
  local cuda_libs
  cuda_libs=$(find "$torch_lib/../../nvidia" -mindepth 2 -maxdepth 2 -type d -name lib 2>/dev/null | paste -sd:)
  export LD_LIBRARY_PATH="$bundle/lib:$torch_lib${cuda_libs:+:$cuda_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  local b="$bundle/bin" out="${OUT:-/tmp}/slimfit_gpu" status=0
  mkdir -p "$out"
  # The tests read Fashion-MNIST where Debian puts it.
  if [ ! -e /usr/share/datasets/fashion-mnist ]; then
    mkdir -p /usr/share/datasets && ln -s "$(cd "$bundle/data" && pwd)" /usr/share/datasets/fashion-mnist
  fi
  echo "== device"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
  echo "== gpu-tagged tests"
  for label in "${gpu_tests[@]}"; do
    # One GPU: not the two-GPU NCCL test (its own target, tagged multi_gpu).
    "$b/$(basename "$(path "$label")")" --gtest_filter=-NcclMultiGpuTest.* || status=1
  done
  echo "== CUDA kernels against LibTorch's ops (ratio > 1: the kernel is faster)"
  "$b/kernels_benchmark" || status=1
  echo "== one resnet_small epoch of 20,000 samples, CPU (16 threads) then GPU"
  for device in cpu cuda; do
    /usr/bin/time -f "$device wall %e s" "$b/train" --model=resnet_small --epochs=1 --batch_size=128 \
      --data_dir="$bundle/data" \
      --max_train_samples=20000 --device="$device" --threads=16 --latency_runs=3 --out="$out/train_$device" \
      | grep -E "^epoch|accuracy" || status=1
  done
  echo "== compress on the GPU (tools/gpu/experiment.pbtxt), the result scored on the CPU"
  "$b/compress" --experiment=tools/gpu/experiment.pbtxt --output_dir="$out/compress" \
      --references_dir="$out/references" | tail -25 || status=1
  "$b/evaluate" --model="$out/compress/model.pt" --data_dir="$bundle/data" --device=cpu --report=false || status=1
  return $status
}

case "${1:-}" in
  pack) pack ;;
  run) run ;;
  *) echo "usage: $0 pack|run (docs/gpu.md)" >&2; exit 2 ;;
esac
