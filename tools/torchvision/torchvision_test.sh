#!/usr/bin/env bash
# torchvision architectures traced and scripted by today's PyTorch (the
# venv's torch, the LibTorch slimfit links) go through slimfit: a residual
# net (resnet18), depthwise convs with squeeze-excitation and hardswish
# (mobilenet_v3_small), concatenations (squeezenet1_1), a DenseNet whose
# scripted form grows a list (densenet121), grouped convs (regnet_x_400mf) and
# chunk + channel shuffle (shufflenet_v2_x0_5). Each is pruned with //tools:prune
# (l1_filter at 30 %, no data) and must lose at least a fifth of its
# parameters with no op keeping its channels, and converted to int8
# (//quantizers/benchmark:int8_sweep, random calibration) with every conv and
# linear in int8; both written files
# load in Python with torch.jit.load and give outputs of the original's shape.
# tools/torchvision/sweep.sh and quantize_sweep.sh do every architecture.
set -euo pipefail
py="$1" make_models="$2" prune="$3" sweep="$4"
out="${TEST_TMPDIR:-$(mktemp -d)}/tv"
mkdir -p "$out/pruned" "$out/int8"
fail() { echo "FAIL: $*" >&2; exit 1; }

names=(resnet18 mobilenet_v3_small squeezenet1_1 densenet121 regnet_x_400mf shufflenet_v2_x0_5)
OMP_NUM_THREADS=1 "$py" "$make_models" "$out" "${names[@]}"
checked=0
for name in "${names[@]}"; do
  for form in traced scripted; do
    f="$out/${name}_${form}.pt"
    [[ -s "$f" ]] || fail "$name was not $form by torch"
    "$prune" --model="$f" --pruner=l1_filter --ratio=0.3 --input_shape=3,128,128 --latency_runs=0 \
      --out="$out/pruned/${name}_${form}.pt" > "$out/${name}_${form}.log" 2>&1 ||
      fail "${name}_${form}: prune failed: $(tail -3 "$out/${name}_${form}.log")"
    read -r before after < <(awk '/^parameters/{print $2, $3}' "$out/${name}_${form}.log" | tr -d ',')
    [[ -n "$before" && -n "$after" ]] || fail "${name}_${form}: no parameter line: $(cat "$out/${name}_${form}.log")"
    (( after * 5 <= before * 4 )) || fail "${name}_${form}: parameters $before -> $after, under a fifth removed"
    # The analysis follows every op of these six: none keeps its channels.
    grep -q "^parameters" "$out/${name}_${form}.log" && ! grep -A20 "^ops that kept" "$out/${name}_${form}.log" ||
      fail "${name}_${form}: an op kept its channels"
    echo "${name}_${form}: pruned, parameters $before -> $after"
    checked=$((checked + 1))
  done
done
(( checked == 2 * ${#names[@]} )) || fail "checked $checked models, wanted $((2 * ${#names[@]}))"

"$sweep" --out_dir="$out/int8" "$out"/*_traced.pt "$out"/*_scripted.pt > "$out/int8.log" 2>&1 ||
  fail "int8 conversion failed: $(cat "$out/int8.log")"
cat "$out/int8.log"
grep -q FAILED "$out/int8.log" && fail "a model did not convert to int8"
(( $(grep -c "float conv/linear  0 " "$out/int8.log") == 2 * ${#names[@]} )) || fail "a conv or linear stayed float"

OMP_NUM_THREADS=1 "$py" - "$out" "${names[@]}" <<'PY' || fail "a written model does not load or run in Python"
import sys, torch
out, names = sys.argv[1], sys.argv[2:]
torch.backends.quantized.engine = "onednn"
x = torch.randn(2, 3, 128, 128)
for name in names:
    for form in ("traced", "scripted"):
        ref = torch.jit.load(f"{out}/{name}_{form}.pt").eval()
        with torch.no_grad():
            want = ref(x).shape
            for kind, path in (("pruned", f"{out}/pruned/{name}_{form}.pt"),
                               ("int8", f"{out}/int8/{name}_{form}_int8.pt")):
                got = torch.jit.load(path).eval()(x).shape
                print(f"python {torch.__version__}: {name}_{form} {kind} loads, output {tuple(got)}")
                assert got == want, (name, form, kind, got, want)
PY
echo PASS
