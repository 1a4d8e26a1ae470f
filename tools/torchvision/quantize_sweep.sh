#!/usr/bin/env bash
# Converts every torchvision classification architecture, traced and scripted
# in Python, to int8 with //quantizers/benchmark:int8_sweep (calibrated on
# random inputs: a convertibility check, not an accuracy figure), then checks
# in Python that each int8 model loads with torch.jit.load and runs.
#
#   bazel build //quantizers/benchmark:int8_sweep && tools/torchvision/quantize_sweep.sh [/tmp/tv]
set -u
cd "$(dirname "$0")/../.."
# The venv's Python (//third_party:python), whose torch is the LibTorch slimfit links.
PY="$(bazel info output_base 2>/dev/null)/external/libtorch/python"
[ -x "$PY" ] || { echo "no $PY: run ./bootstrap.sh and build once" >&2; exit 2; }
OUT="${1:-/tmp/slimfit_torchvision}"
SWEEP=bazel-bin/quantizers/benchmark/int8_sweep
[ -x "$SWEEP" ] || { echo "build //quantizers/benchmark:int8_sweep first" >&2; exit 2; }
if [[ "${REUSE:-0}" != 1 ]] || ! ls "$OUT"/*_traced.pt > /dev/null 2>&1; then
  "$PY" tools/torchvision/make_models.py "$OUT" | sed 's/^/made: /'
fi
mkdir -p "$OUT/int8"
"$SWEEP" --out_dir="$OUT/int8" $(ls "$OUT"/*_traced.pt "$OUT"/*_scripted.pt | grep -v inception_v3) 2>/dev/null
"$SWEEP" --out_dir="$OUT/int8" --input_shape=3,299,299 "$OUT"/inception_v3_*.pt 2>/dev/null
for f in "$OUT"/int8/*_int8.pt; do
  size=128; [[ "$(basename "$f")" == inception_v3* ]] && size=299
  "$PY" - "$f" $size <<'PY' 2>&1 | tail -1
import sys, torch
torch.backends.quantized.engine = "onednn"
m = torch.jit.load(sys.argv[1]); s = int(sys.argv[2])
y = m(torch.randn(2, 3, s, s))
y = y[0] if isinstance(y, tuple) else y
print("python: %-40s loads, output %s" % (sys.argv[1].split("/")[-1], tuple(y.shape)))
PY
done
