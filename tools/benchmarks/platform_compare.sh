#!/usr/bin/env bash
# Two checkouts of slimfit (two LibTorch builds, say before and after a
# LibTorch upgrade) measured side by side in one run, alternating so that
# machine load hits both alike:
#   - one training epoch of resnet_small (trainer/benchmark, C++ line),
#   - int8 (PTQ) latency of trained zoo models at batch 1 and 64, each as a
#     ratio to fp32 timed beside it (quantizers/benchmark, no QAT, no PyTorch).
# The trained models come from runs/references/ (what `bazel run
# //tools:compress` caches); pass them as name=path.
#
#   tools/benchmarks/platform_compare.sh /tmp/before . \
#       resnet_small=runs/references/resnet_small_<hash>/model.pt
set -euo pipefail
before=$(cd "$1" && pwd)
after=$(cd "$2" && pwd)
models="$3"
rounds="${ROUNDS:-2}"
# Paths in $models are made absolute: each side runs in its own checkout.
abs_models=$(echo "$models" | tr ',' '\n' | while IFS== read -r name path; do
  printf '%s=%s,' "$name" "$(cd "$(dirname "$path")" && pwd)/$(basename "$path")"; done)
abs_models=${abs_models%,}

for side in "$before" "$after"; do
  (cd "$side" && bazel build --noshow_progress --ui_event_filters=-info //trainer/benchmark:train_epoch_benchmark //quantizers/benchmark:quantization_benchmark)
done

for round in $(seq 1 "$rounds"); do
  for side in "$before" "$after"; do
    echo "== round $round, $side: epoch"
    (cd "$side" && bazel run --noshow_progress --ui_event_filters=-info //trainer/benchmark:train_epoch_benchmark -- --samples=10000 2>/dev/null |
       sed -n '/^resnet_small, one epoch/,/^$/p')
    echo "== round $round, $side: int8"
    (cd "$side" && bazel run --noshow_progress --ui_event_filters=-info //quantizers/benchmark:quantization_benchmark -- --models="$abs_models" \
        --qat_epochs=0 --pytorch=false --out_dir=/tmp/platform_compare_q ${INT8_FLAGS:-} 2>/dev/null |
       sed -n '/on Fashion-MNIST (test/,/^$/p')
  done
done
