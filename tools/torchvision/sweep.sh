#!/usr/bin/env bash
# Prunes every torchvision classification architecture, traced and scripted in
# Python, with //tools:prune (no data: l1_filter at 30 %), then checks in
# Python that each written model loads with torch.jit.load and gives outputs of
# the original's shape. Prints one line per model: the parameter ratio, or the
# error (a refusal lists the ops that kept channels).
#
#   bazel build //tools:prune && tools/torchvision/sweep.sh [/tmp/tv]
set -u
cd "$(dirname "$0")/../.."
# The venv's Python (//third_party:python), whose torch is the LibTorch slimfit links.
PY="$(bazel info output_base 2>/dev/null)/external/libtorch/python"
[ -x "$PY" ] || { echo "no $PY: run ./bootstrap.sh and build once" >&2; exit 2; }
OUT="${1:-/tmp/slimfit_torchvision}"
PRUNE=bazel-bin/tools/prune
[ -x "$PRUNE" ] || { echo "build //tools:prune first" >&2; exit 2; }
# REUSE=1 keeps models made by an earlier run.
if [[ "${REUSE:-0}" != 1 ]] || ! ls "$OUT"/*_traced.pt > /dev/null 2>&1; then
  "$PY" tools/torchvision/make_models.py "$OUT" | sed 's/^/made: /'
fi
for f in "$OUT"/*_traced.pt "$OUT"/*_scripted.pt; do
  [ -e "$f" ] || continue
  base=$(basename "$f" .pt)
  size=128; [[ "$base" == inception_v3* ]] && size=299
  log="$OUT/$base.log"
  if "$PRUNE" --model="$f" --pruner=l1_filter --ratio=0.3 --input_shape=3,$size,$size --latency_runs=0 \
      --out="$OUT/pruned/$base.pt" > "$log" 2>&1; then
    params=$(grep '^parameters' "$log" | awk '{print $2" -> "$3" ("$4")"}')
    channels=$(sed -n 's/^total channels \(.*\)$/\1/p' "$log")
    kept=$(awk '/^ops that kept/{f=1;next} /^$/{f=0} f' "$log" | wc -l)
    check=$("$PY" - "$f" "$OUT/pruned/$base.pt" $size <<'PY'
import sys, torch
a = torch.jit.load(sys.argv[1]).eval(); b = torch.jit.load(sys.argv[2]).eval()
s = int(sys.argv[3]); x = torch.randn(2, 3, s, s)
with torch.no_grad():
    ya, yb = a(x), b(x)
if isinstance(ya, tuple): ya, yb = ya[0], yb[0]  # scripted GoogLeNet / Inception return namedtuples
print("loads in Python, output", tuple(yb.shape), "ok" if ya.shape == yb.shape else "SHAPE MISMATCH")
PY
)
    printf '%-32s pruned: channels %s, params %s; %s; %s op kinds kept channels\n' \
      "$base" "$channels" "$params" "$check" "$kept"
  else
    printf '%-32s refused: %s\n' "$base" "$(grep -m1 -i 'error\|prune:' "$log" | cut -c1-200)"
  fi
done
