#!/usr/bin/env bash
# //tools:compress as a user runs it, killed with SIGKILL twice (during the
# sensitivity pass and during the final fine-tune), interrupted with SIGINT
# (exit 130, best so far written, resume hint) and resumed: finished
# records are never recomputed (their files stay byte-identical), the final
# fine-tune continues from its last epoch, every output parses, and the
# written model loads in Python with torch.jit.load, and model.onnx (the
# experiment asks for ONNX too) runs in ONNX Runtime and agrees with it. Run again, the finished
# run recomputes nothing and writes the same bytes. Last, the disk "fills
# up" under a finished run: exit 1 naming the file, finished outputs intact.
set -uo pipefail
compress="tools/compress"
py="$1"  # the venv's Python (//third_party:python)
verify_onnx="$2"  # export/verify_onnx.py: the report times model.onnx in ONNX Runtime with it
out="${TEST_TMPDIR:-$(mktemp -d)}"
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "== errors"
"$compress" --experiment="$out/missing.pbtxt" 2> "$out/err.txt" && fail "missing experiment accepted"
grep -q -- "--experiment" "$out/err.txt" || fail "unclear error: $(cat "$out/err.txt")"
echo 'model { zoo: "resnet50" } data { synthetic { } } full_trainer { optimizer { sgd { } lr: 0.1 } }' > "$out/bad.pbtxt"
"$compress" --experiment="$out/bad.pbtxt" 2> "$out/err.txt" && fail "unknown zoo model accepted"
grep -q 'model.zoo: not a zoo model, got "resnet50"; valid: lenet5' "$out/err.txt" || fail "unclear error: $(cat "$out/err.txt")"

[[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]] ||
  fail "dataset-fashion-mnist is not installed: run ./bootstrap.sh"

cat > "$out/slice.pbtxt" <<'PB'
model { zoo: "lenet5" reference_epochs: 1 }
data {
  mnist { }
  train_batch_size: 64
  max_train_samples: 20000
  max_eval_samples: 1000
  train_transforms { normalize { mean: 0.2860 std: 0.3530 } }
  eval_transforms { normalize { mean: 0.2860 std: 0.3530 } }
}
full_trainer { optimizer { sgd { momentum: 0.9 } lr: 0.05 } scheduler { cosine { } interval: ITERATION } }
compression { delta: 2.0 level: 2 candidate_epochs: 1 final_epochs: 4 }
export { formats: [TORCHSCRIPT, ONNX] }
PB
run="$out/run"
state="$run/state/candidates"
args=(--experiment="$out/slice.pbtxt" --output_dir="$run" --references_dir="$out/refs")

# Waits (up to 300 s) until `cond` holds, then SIGKILLs the run.
kill_when() {
  local pid=$1 cond=$2
  for _ in $(seq 1 6000); do
    if eval "$cond"; then kill -9 "$pid"; wait "$pid" 2>/dev/null; return 0; fi
    kill -0 "$pid" 2>/dev/null || fail "the run ended before the kill point ($cond): $(tail -5 "$out/log1.txt")"
    sleep 0.05
  done
  fail "timed out waiting for: $cond"
}
snapshot() { mkdir -p "$1"; cp "$state"/*.pbtxt "$1"/ 2>/dev/null || true; }
unchanged() {
  for f in "$1"/*.pbtxt; do
    cmp -s "$f" "$state/$(basename "$f")" || fail "record $(basename "$f") was rewritten after resuming"
  done
}

echo "== run 1: killed during the sensitivity pass"
"$compress" "${args[@]}" > "$out/log1.txt" 2>&1 &
kill_when $! '[[ $(ls "$state"/*.pbtxt 2>/dev/null | wc -l) -ge 5 ]]'
snapshot "$out/snap1"
n1=$(ls "$out/snap1" | wc -l)
echo "killed with $n1 records"

echo "== run 2: resumed, killed during the final fine-tune"
"$compress" "${args[@]}" > "$out/log2.txt" 2>&1 &
kill_when $! 'grep -lq "phase: \"final_epoch\"" "$state"/*.pbtxt 2>/dev/null'
grep -q "resuming: $n1 record(s)" "$out/log2.txt" || fail "run 2 did not resume from $n1 records: $(head -5 "$out/log2.txt")"
unchanged "$out/snap1"
snapshot "$out/snap2"

echo "== run 3: resumed, interrupted with SIGINT during the final fine-tune"
"$compress" "${args[@]}" > "$out/log_int.txt" 2>&1 &
pid=$!
for _ in $(seq 1 6000); do
  grep -q "resuming the fine-tune after epoch" "$out/log_int.txt" && break
  kill -0 "$pid" 2>/dev/null || fail "the run ended before the fine-tune resumed: $(tail -5 "$out/log_int.txt")"
  sleep 0.05
done
kill -INT "$pid"
wait "$pid"
rc=$?
[[ $rc -eq 130 ]] || fail "SIGINT: exit code $rc, wanted 130: $(tail -5 "$out/log_int.txt")"
grep -q "interrupted by SIGINT" "$out/log_int.txt" || fail "no interrupt message: $(tail -5 "$out/log_int.txt")"
grep -q "run the same command again to resume" "$out/log_int.txt" || fail "no resume hint: $(tail -5 "$out/log_int.txt")"
[[ -s "$run/model.pt" && -s "$run/report.json" ]] || fail "SIGINT: the best so far was not written"
unchanged "$out/snap2"
snapshot "$out/snap2"

echo "== run 4: resumed to the end (with --python and --verify_onnx, as bazel run passes them)"
"$compress" "${args[@]}" --python="$py" --verify_onnx="$verify_onnx" > "$out/log3.txt" 2>&1 ||
  fail "run 3 exited $?: $(tail -20 "$out/log3.txt")"
cat "$out/log3.txt"
unchanged "$out/snap2"
grep -q "resuming the fine-tune after epoch [1-3]/4" "$out/log3.txt" || fail "the final fine-tune did not resume"
grep -q "record(s) reused from state/" "$out/log3.txt" || fail "no reuse line"
for f in model.pt model.onnx reference.pt report.json report.md report.html metrics.jsonl; do
  [[ -s "$run/$f" ]] || fail "no $f"
done
ls "$run" "$state" | grep -q '\.tmp' && fail "temporary files left behind"
# metrics.jsonl: whole JSON objects, one per line, across the three runs.
"$py" - "$run" <<'PY' || fail "outputs do not parse"
import json, sys
run = sys.argv[1]
lines = [json.loads(l) for l in open(run + "/metrics.jsonl")]
assert lines[-1]["event"] == "result", lines[-1]
report = json.load(open(run + "/report.json"))
# Level 2 at delta 2 on this slice: int8 alone qualifies, so a returned
# reference is a failure, not an outcome.
assert not report["returned_reference"], report
assert report["result"]["eval"] >= report["target"] - 1e-9, report["result"]
print("metrics.jsonl", len(lines), "lines; result", report["result"]["key"])
# export { formats: [TORCHSCRIPT, ONNX] }: model.onnx listed with its size,
# and it computes what model.pt computes (ONNX Runtime vs LibTorch, the
# first 500 Fashion-MNIST test images).
import gzip, os
import numpy as np, onnxruntime as ort, torch
files = {f["name"]: f for f in report["files"]}
for name in ("model.pt", "model.onnx"):
    assert files[name]["bytes"] == os.path.getsize(os.path.join(run, name)), files
# Under objective LATENCY the result is the pruned model or its int8 form,
# whichever times faster here (on a 0.03-MMAC lenet5 the two can be within
# noise: 0.586 vs 0.578 ms on one machine), so what is expected follows the
# result the report names.
int8 = report["result"]["phase"] == "int8"
assert report["result"]["phase"] != "weights4", report["result"]  # 4-bit weights: objective SIZE only
assert ("int8 as QDQ" in files["model.onnx"]["note"]) == int8, (int8, files["model.onnx"])
raw = gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").read()
x = np.frombuffer(raw, np.uint8, offset=16)[: 500 * 784].reshape(500, 1, 28, 28)
x = ((x.astype(np.float32) / 255 - 0.2860) / 0.3530).astype(np.float32)
o = ort.InferenceSession(os.path.join(run, "model.onnx"), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
with torch.no_grad():
    t = torch.jit.load(os.path.join(run, "model.pt"))(torch.from_numpy(x)).numpy()
agreement = (o.argmax(1) == t.argmax(1)).mean()
assert agreement >= 0.99, agreement
print("model.onnx: argmax agreement with model.pt", agreement)
# The Runtimes section: the result (an int8 result also as its fp32 form),
# each in LibTorch and in ONNX Runtime, batch 1 and 64 timed (positive),
# nothing missed.
rows = report["runtimes"]
print("runtimes:", rows)
expected = [("fp32", "LibTorch"), ("fp32", "ONNX")] + ([("int8", "LibTorch"), ("int8", "ONNX")] if int8 else [])
assert [(r["model"].split(":")[0], r["runtime"].split(" ")[0]) for r in rows] == expected, rows
assert all(r["batch1_ms"] > 0 and r["batch64_ms"] > r["batch1_ms"] for r in rows), rows
assert "Not timed" not in report["runtimes_note"], report["runtimes_note"]
assert "## Runtimes" in open(os.path.join(run, "report.md")).read()
PY
"$py" -c "import torch, sys; m = torch.jit.load(sys.argv[1]); print('python output', tuple(m(torch.randn(2, 1, 28, 28)).shape))" \
  "$run/model.pt" || fail "model.pt does not load in Python's torch"
echo "== run 5: the finished run again: nothing recomputed, the same bytes out"
(cd "$run" && md5sum *.pt model.onnx > "$out/before.md5")
"$compress" "${args[@]}" > "$out/log_again.txt" 2>&1 || fail "re-run exited $?: $(tail -5 "$out/log_again.txt")"
grep -q "calibration:\|epoch [0-9]*/[0-9]*:" "$out/log_again.txt" && fail "the re-run computed again: $(cat "$out/log_again.txt")"
# The decision rests on the side-by-side timing recorded the first time, not
# on a new one that noise may rank otherwise (which could return another model).
grep -q "the figures recorded when these were first timed together" "$out/log_again.txt" ||
  fail "the re-run timed the results again: $(grep -A5 "side by side" "$out/log_again.txt")"
(cd "$run" && md5sum --quiet -c "$out/before.md5") || fail "re-running a finished run changed its outputs"

echo "== run 6: the disk fills up (writes fail past half of model.pt: RLIMIT_FSIZE, EFBIG as ENOSPC)"
(cd "$run" && md5sum *.pt report.json report.md > "$out/before.md5")
limit_kib=$(( $(stat -c %s "$run/model.pt") / 2048 ))
(( limit_kib >= 1 )) || fail "model.pt is under 2 KiB: $(stat -c %s "$run/model.pt") bytes"
# Through a pipe: the limit would cut the log file itself (at model.pt's half
# size, a few KiB for an int8 lenet5) before the error reaches it.
( trap '' XFSZ; ulimit -f "$limit_kib"; exec "$compress" "${args[@]}" ) 2>&1 | cat > "$out/log_full.txt"
rc=${PIPESTATUS[0]}
[[ $rc -eq 1 ]] || fail "disk full: exit code $rc, wanted 1: $(tail -5 "$out/log_full.txt")"
grep -q "File too large" "$out/log_full.txt" || fail "disk full: unclear error: $(tail -3 "$out/log_full.txt")"
grep -q "\"$run/model.pt\"" "$out/log_full.txt" || fail "disk full: the error does not name model.pt: $(tail -3 "$out/log_full.txt")"
(cd "$run" && md5sum --quiet -c "$out/before.md5") || fail "disk full: a finished output was changed"
ls -A "$run" "$state" | grep -q '\.tmp' && fail "disk full: temporary files left behind"
tail -1 "$out/log_full.txt"
echo "PASS"
