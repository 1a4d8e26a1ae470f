#!/usr/bin/env bash
# Builds and runs //:custom_engine of this separate workspace, which depends
# on @slimfit//search:engine and friends the way a user's repository does.
# Not part of `bazel test //...` (a second workspace compiles slimfit again:
# about 20 minutes on 2 cores). Usage, from anywhere:
#   examples/external_workspace/check.sh
set -euo pipefail
cd "$(dirname "$0")"
bazel build //:custom_engine
out="$(mktemp -d)"
bazel-bin/custom_engine --train_samples=3000 --output_dir="$out/run" | tail -12
[[ -s "$out/run/model.pt" ]] || { echo "FAIL: no model written"; exit 1; }
echo "PASS: built in a second workspace against @slimfit, ran, wrote $out/run/model.pt"
