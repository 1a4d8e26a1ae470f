#!/usr/bin/env bash
# Exports every torchvision classification architecture, traced and scripted
# in Python, to ONNX with //tools:export, then runs each .onnx in ONNX
# Runtime against the .pt in LibTorch on 8 random inputs
# (export/verify_onnx.py: fp32 within 1e-4 relative). Prints one line per
# model: exported and verified (the max relative difference), or why not
# (the op with no mapping and its source line, or the failed check).
#
#   bazel build //tools:export && tools/torchvision/export_sweep.sh [/tmp/tv]
#   ONLY="resnet18 mobilenet_v2" REUSE=1 tools/torchvision/export_sweep.sh
#   INT8=1 REUSE=1 tools/torchvision/export_sweep.sh /tmp/tv
#       (also the int8 models quantize_sweep.sh wrote to /tmp/tv/int8: each
#        exported as QDQ and run in both runtimes on 8 random inputs; they
#        are calibrated on random data, so the line gives the agreement and
#        the largest difference, not a pass / fail)
set -u
cd "$(dirname "$0")/../.."
# The venv's Python (//third_party:python), whose torch is the LibTorch slimfit links.
PY="$(bazel info output_base 2>/dev/null)/external/libtorch/python"
[ -x "$PY" ] || { echo "no $PY: run ./bootstrap.sh and build once" >&2; exit 2; }
OUT="${1:-/tmp/slimfit_torchvision}"
EXPORT=bazel-bin/tools/export
[ -x "$EXPORT" ] || { echo "build //tools:export first" >&2; exit 2; }
# REUSE=1 keeps models made by an earlier run (this sweep's or sweep.sh's).
if [[ "${REUSE:-0}" != 1 ]] || ! ls "$OUT"/*_traced.pt > /dev/null 2>&1; then
  "$PY" tools/torchvision/make_models.py "$OUT" ${ONLY:-} | sed 's/^/made: /'
fi
mkdir -p "$OUT/onnx"
exported=0 verified=0 total=0
for f in "$OUT"/*_traced.pt "$OUT"/*_scripted.pt; do
  [ -e "$f" ] || continue
  base=$(basename "$f" .pt)
  if [[ -n "${ONLY:-}" ]] && ! grep -qw "${base%_*}" <<< "$ONLY"; then continue; fi
  total=$((total + 1))
  size=128; [[ "$base" == inception_v3* ]] && size=299
  onnx="$OUT/onnx/$base.onnx"
  start=$(date +%s.%N)
  if "$EXPORT" --model="$f" --format=onnx --input_shape=3,$size,$size --out="$onnx" > "$OUT/onnx/$base.log" 2>&1; then
    exported=$((exported + 1))
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    nodes=$(sed -n 's/.* bytes, \([0-9]*\) nodes.*/\1/p' "$OUT/onnx/$base.log")
    if "$PY" export/verify_onnx.py --model "$f" --onnx "$onnx" --kind fp32 --random 8 --batch 4 \
        > "$OUT/onnx/$base.verify" 2>&1; then
      verified=$((verified + 1))
      rel=$(tail -1 "$OUT/onnx/$base.verify" | "$PY" -c 'import json,sys; print("%.1e" % json.load(sys.stdin)["max_rel"])')
      printf '%-32s exported (%s nodes, %.1f s), verified: max relative difference %s\n' "$base" "$nodes" "$secs" "$rel"
    else
      printf '%-32s exported, NOT verified: %s\n' "$base" "$(grep -m1 'FAIL\|Error' "$OUT/onnx/$base.verify" | cut -c1-200)"
    fi
  else
    printf '%-32s not exported: %s\n' "$base" "$(grep -m1 'export:' "$OUT/onnx/$base.log" | cut -c1-240)"
  fi
done
echo "exported $exported of $total, verified in ONNX Runtime $verified of $total"
[[ "${INT8:-0}" == 1 ]] || exit 0
q_exported=0 q_total=0
for f in "$OUT"/int8/*_int8.pt; do
  [ -e "$f" ] || continue
  base=$(basename "$f" .pt)
  if [[ -n "${ONLY:-}" ]] && ! grep -qw "${base%_*_int8}" <<< "$ONLY"; then continue; fi
  q_total=$((q_total + 1))
  size=128; [[ "$base" == inception_v3* ]] && size=299
  onnx="$OUT/onnx/$base.onnx"
  if "$EXPORT" --model="$f" --format=onnx --input_shape=3,$size,$size --out="$onnx" > "$OUT/onnx/$base.log" 2>&1; then
    q_exported=$((q_exported + 1))
    nodes=$(sed -n 's/.* bytes, \([0-9]*\) nodes.*/\1/p' "$OUT/onnx/$base.log")
    "$PY" export/verify_onnx.py --model "$f" --onnx "$onnx" --kind int8 --random 8 --batch 4 --min_agreement 0 \
        > "$OUT/onnx/$base.verify" 2>&1
    figures=$(tail -1 "$OUT/onnx/$base.verify" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print("agreement %.3f, max relative difference %.3f" % (d["argmax_agreement"], d["max_rel"]))' 2>&1)
    printf '%-40s exported as QDQ (%s nodes); in ONNX Runtime: %s\n' "$base" "$nodes" "$figures"
  else
    printf '%-40s not exported: %s\n' "$base" "$(grep -m1 'export:' "$OUT/onnx/$base.log" | cut -c1-240)"
  fi
done
echo "int8: exported $q_exported of $q_total"
