#!/usr/bin/env bash
# Runs the library example on a small slice: the engine with a user's
# forward pass, loss (dict of terms) and evaluation function (eval_key
# macro_f1) finishes and writes a model within delta.
set -uo pipefail
out="${TEST_TMPDIR:-$(mktemp -d)}"
if [[ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]]; then
  echo "dataset-fashion-mnist not installed: skipping"; exit 0
fi
examples/custom_engine --train_samples=3000 --output_dir="$out/run" > "$out/log.txt" 2>&1 \
  || { cat "$out/log.txt"; echo "FAIL: exited"; exit 1; }
cat "$out/log.txt"
grep -q "target macro_f1 >=" "$out/log.txt" || { echo "FAIL: the engine did not listen to macro_f1"; exit 1; }
[[ -s "$out/run/model.pt" && -s "$out/run/report.html" ]] || { echo "FAIL: no model/report"; exit 1; }
echo PASS
