#!/usr/bin/env bash
# End-to-end checks of the tools as a user runs them: inspect on a zoo model
# and on a trained file, train on a Fashion-MNIST slice, and clear errors.
set -uo pipefail
inspect="tools/inspect"
train="tools/train"
evaluate="tools/evaluate"
profile="tools/profile"
prune="tools/prune"
quantize="tools/quantize"
export_images="tools/export_images"
out="${TEST_TMPDIR:-$(mktemp -d)}"
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "== inspect a zoo model"
"$inspect" --model=resnet_small > "$out/inspect.txt" || fail "inspect resnet_small exited $?"
grep -q "layer2.b0.downsample.conv  *Conv2d  *\[32, 16, 1, 1\]" "$out/inspect.txt" || fail "no downsample conv in: $(cat "$out/inspect.txt")"
grep -q "^fc  *Linear  *\[10, 64\]" "$out/inspect.txt" || fail "no fc layer"
grep -q "layers, [0-9]* parameters" "$out/inspect.txt" || fail "no total line"

echo "== inspect errors"
"$inspect" --model=resnet50 2> "$out/err.txt" && fail "unknown model accepted"
grep -q 'a zoo model: lenet5, mobilenetv2_small, resnet_small, vgg_small' "$out/err.txt" || fail "error does not list the zoo: $(cat "$out/err.txt")"
echo "not a model" > "$out/fake.pt"
"$inspect" --model="$out/fake.pt" 2> "$out/err.txt" && fail "text file accepted as a model"
grep -q "not a zip archive" "$out/err.txt" || fail "unclear error: $(cat "$out/err.txt")"

# bootstrap.sh installs dataset-fashion-mnist: its absence is a failure.
[[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]] ||
  fail "dataset-fashion-mnist is not installed (run ./bootstrap.sh)"
{
  echo "== train on a Fashion-MNIST slice"
  "$train" --model=lenet5 --epochs=2 --max_train_samples=5000 --latency_runs=3 --out="$out/run" \
    > "$out/train.txt" || fail "train exited $?: $(cat "$out/train.txt")"
  cat "$out/train.txt"
  acc=$(sed -n 's/^test accuracy *\([0-9.]*\)%.*/\1/p' "$out/train.txt")
  [[ -n "$acc" ]] || fail "no test accuracy line"
  # 5000 samples, two epochs: ~75% when training works; chance is 10%.
  awk -v a="$acc" 'BEGIN { exit !(a > 60) }' || fail "test accuracy $acc% is not above 60%"
  [[ -f "$out/run/model.pt" && -f "$out/run/profile.json" ]] || fail "no saved model / profile.json"
  [[ $(wc -l < "$out/run/metrics.jsonl") -eq 2 ]] || fail "metrics.jsonl should have one line per epoch"
  "$inspect" --model="$out/run/model.pt" | grep -q "5 layers, 61706 parameters" || fail "saved model does not inspect"
  "$inspect" --model="$out/run/model.pt" --archive | grep -q "code files" || fail "--archive listing"

  echo "== evaluate the saved model"
  "$evaluate" --model="$out/run/model.pt" --json="$out/eval.json" > "$out/eval.txt" || fail "evaluate exited $?"
  cat "$out/eval.txt"
  eacc=$(sed -n 's/^ *accuracy *\([0-9.]*\).*/\1/p' "$out/eval.txt")
  awk -v a="$acc" -v b="$eacc" 'BEGIN { exit !(a - b < 0.01 && b - a < 0.01) }' || fail "evaluate says $eacc%, train said $acc%"
  grep -q "confusion matrix" "$out/eval.txt" || fail "no confusion matrix"
  grep -q '"top5_accuracy"' "$out/eval.json" || fail "no JSON"
}

echo "== an image folder (JPEG, 3 channels) through train, evaluate, prune and quantize"
"$export_images" --out="$out/images" --channels=3 --size=32 --format=jpg --max_per_split=1500 > "$out/export.txt" ||
  fail "export_images exited $?"
cat "$out/export.txt"
for split in train val test; do
  n=$(find "$out/images/$split" -name '*.jpg' | wc -l)
  [[ "$n" -eq 1500 ]] || fail "$split has $n JPEG files, not 1500"
done
[[ $(ls "$out/images/train" | tr '\n' ' ') == "0 1 2 3 4 5 6 7 8 9 " ]] || fail "class folders: $(ls "$out/images/train")"
cat > "$out/images.pbtxt" <<DATA
image_folder {
  root: "$out/images"
  index_cache_dir: "$out/index"
  train_sample_transforms { random_resized_crop { size: 28 min_scale: 0.5 } }
  eval_sample_transforms { center_crop { size: 28 } }
}
train_transforms { random_horizontal_flip { } }
train_transforms { normalize { mean: [0.286, 0.286, 0.286] std: [0.353, 0.353, 0.353] } }
eval_transforms { normalize { mean: [0.286, 0.286, 0.286] std: [0.353, 0.353, 0.353] } }
DATA
"$train" --model=lenet5 --data="$out/images.pbtxt" --epochs=3 --latency_runs=3 --out="$out/img" > "$out/img.txt" ||
  fail "train on the image folder exited $?: $(cat "$out/img.txt")"
cat "$out/img.txt"
iacc=$(sed -n 's/^test accuracy *\([0-9.]*\)%.*/\1/p' "$out/img.txt")
# 1,500 images, three epochs: ~67% when decoding and labels are right; chance is 10%.
awk -v a="$iacc" 'BEGIN { exit !(a > 50) }' || fail "image-folder test accuracy $iacc% is not above 50%"
"$inspect" --model="$out/img/model.pt" | grep -q "Conv2d  *\[6, 3, 5, 5\]" || fail "the model did not take 3 channels"
"$evaluate" --model="$out/img/model.pt" --data="$out/images.pbtxt" > "$out/img_eval.txt" || fail "evaluate exited $?"
grep -q "on $out/images.pbtxt/test (1500 samples)" "$out/img_eval.txt" || fail "evaluate: $(head -2 "$out/img_eval.txt")"
eiacc=$(sed -n 's/^ *accuracy *\([0-9.]*\).*/\1/p' "$out/img_eval.txt")
awk -v a="$iacc" -v b="$eiacc" 'BEGIN { exit !(a - b < 0.01 && b - a < 0.01) }' || fail "evaluate says $eiacc%, train said $iacc%"
"$prune" --model="$out/img/model.pt" --data="$out/images.pbtxt" --pruner=l1_filter --ratio=0.3 --finetune_epochs=1 \
  --latency_runs=0 --out="$out/img_pruned.pt" > "$out/img_prune.txt" || fail "prune exited $?: $(cat "$out/img_prune.txt")"
grep -q "^parameters  *62006  *[0-9]*" "$out/img_prune.txt" || fail "prune: $(cat "$out/img_prune.txt")"
"$quantize" --model="$out/img/model.pt" --data="$out/images.pbtxt" --latency_runs=0 --out="$out/img_q.pt" \
  > "$out/img_q.txt" || fail "quantize (calibrating on the image folder) exited $?: $(cat "$out/img_q.txt")"
qacc=$(sed -n 's/^test accuracy *[0-9.]*% *\([0-9.]*\)%.*/\1/p' "$out/img_q.txt")
awk -v a="$iacc" -v q="$qacc" 'BEGIN { exit !(q != "" && a - q < 3) }' || fail "int8 on the image folder: '$qacc'% vs $iacc%"
echo "== --device"
"$train" --device=tpu --out="$out/x" 2> "$out/err.txt" && fail "--device=tpu accepted"
grep -q -- '--device: not a device, got "tpu"; valid: cpu, cuda, cuda:<index>, auto' "$out/err.txt" ||
  fail "unclear error: $(cat "$out/err.txt")"
# No device is visible with CUDA_VISIBLE_DEVICES empty, on any machine.
CUDA_VISIBLE_DEVICES= "$evaluate" --model="$out/img/model.pt" --data="$out/images.pbtxt" --device=cuda \
  2> "$out/err.txt" && fail "--device=cuda accepted without a visible CUDA device"
grep -q -- '--device: .*, got "cuda"; valid: cpu, auto' "$out/err.txt" || fail "unclear error: $(cat "$out/err.txt")"
# auto falls back to the CPU there, and scores what the CPU scores.
CUDA_VISIBLE_DEVICES= "$evaluate" --model="$out/img/model.pt" --data="$out/images.pbtxt" --device=auto \
  > "$out/auto_eval.txt" || fail "--device=auto exited $?"
grep -q "accuracy" "$out/auto_eval.txt" || fail "no accuracy line: $(cat "$out/auto_eval.txt")"
cmp <(grep "accuracy" "$out/img_eval.txt") <(grep "accuracy" "$out/auto_eval.txt") ||
  fail "--device=auto scored differently: $(cat "$out/auto_eval.txt")"
rm "$out/images/test/3/"*.jpg
"$evaluate" --model="$out/img/model.pt" --data="$out/images.pbtxt" 2> "$out/err.txt" && fail "an empty class folder was accepted"
grep -q 'class folder ".*test/3" has no .jpg, .jpeg or .png files' "$out/err.txt" || fail "unclear error: $(cat "$out/err.txt")"

echo "== profile"
"$profile" --model=lenet5 --runs=3 --json="$out/cost.json" > "$out/profile.txt" || fail "profile exited $?"
grep -q "416520 MACs" "$out/profile.txt" || fail "lenet5 MACs: $(cat "$out/profile.txt")"
grep -q '"macs": 416520' "$out/cost.json" || fail "profile JSON"
"$profile" --model="$out/fake.pt" 2> "$out/err.txt" && fail "profile accepted a text file"
"$profile" --model=graph/testdata/mixed_traced.pt --input_shape=1,16,x 2> "$out/err.txt" && fail "a bad shape accepted"
grep -q -- '--input_shape: not a list of sizes, got "1,16,x"; valid: comma-separated sizes >= 1, e.g. 3,224,224' \
  "$out/err.txt" || fail "unclear error: $(cat "$out/err.txt")"
"$profile" --model=graph/testdata/mixed_traced.pt --input_shape=1,16,16 --runs=2 > "$out/mixed_profile.txt" ||
  fail "profile --input_shape exited $?: $(cat "$out/mixed_profile.txt")"

echo "== pruning dry run (inspect) and prune on a Python-traced model"
"$inspect" --model=resnet_small --pruner=fpgm --ratio=0.5 --round_to=8 > "$out/dry.txt" || fail "dry run exited $?"
grep -q "group 0: 16 units, 16 prunable: conv1 (Conv2d, 16), layer1.b0.conv2" "$out/dry.txt" || fail "no residual group: $(cat "$out/dry.txt")"
grep -q "^layer3.b1.conv1 *Conv2d *8 *64 *32 *50.0%" "$out/dry.txt" || fail "plan row: $(cat "$out/dry.txt")"
grep -q "^layer3.b1.conv1 *Conv2d *\[32, 32, 3, 3\]" "$out/dry.txt" || fail "shape after pruning"
"$prune" --model=graph/testdata/mixed_traced.pt --pruner=l2_filter --ratio=0.5 --input_shape=1,16,16 \
  --latency_runs=2 --out="$out/pruned.pt" > "$out/prune.txt" || fail "prune exited $?: $(cat "$out/prune.txt")"
cat "$out/prune.txt"
grep -q "^dw2.0 *DepthwiseConv2d *0 *40 *20 *50.0%" "$out/prune.txt" || fail "depthwise x2 row"
grep -q "^parameters .* [0-9.]*x$" "$out/prune.txt" || fail "no parameters row"
grep -q "pruned vs masked max |diff|" "$out/prune.txt" || fail "no check line"
"$inspect" --model="$out/pruned.pt" | grep -q "^fc1 *Linear *\[16, 128\]" || fail "pruned fc1 shape: $("$inspect" --model="$out/pruned.pt")"
"$prune" --model=graph/testdata/mixed_traced.pt --pruner=taylor 2> "$out/err.txt" && fail "taylor without data accepted"
grep -q -- '--data: required by pruner "taylor"' "$out/err.txt" || fail "unclear error: $(cat "$out/err.txt")"
"$prune" --model=graph/testdata/mixed_traced.pt --pruner=fpgn 2> "$out/err.txt" && fail "unknown pruner accepted"
grep -q -- '--pruner: not a pruner, got "fpgn"; valid: level, l1_filter' "$out/err.txt" || fail "unclear error: $(cat "$out/err.txt")"
"$prune" --model=graph/testdata/mixed_traced.pt 2> "$out/err.txt" && fail "no input shape accepted"
grep -q -- '--input_shape: required for a model without slimfit metadata' "$out/err.txt" || fail "unclear error: $(cat "$out/err.txt")"

echo "== quantize: int8 on a zoo model (Fashion-MNIST calibration), 4-bit weights without data"
"$quantize" --model=lenet5 --calibration_batches=4 --latency_runs=2 --out="$out/int8.pt" > "$out/q.txt" \
  || fail "quantize exited $?: $(cat "$out/q.txt")"
cat "$out/q.txt"
grep -q "^calibration: 4 batches" "$out/q.txt" || fail "no calibration line"
grep -q "^0 *conv1 *Conv2d *int8" "$out/q.txt" || fail "conv1 not int8"
grep -q "^file KiB .* [0-9.]*x$" "$out/q.txt" || fail "no size row"
grep -q "^latency ms (batch 64)" "$out/q.txt" || fail "no latency row"
"$quantize" --model=graph/testdata/mixed_traced.pt --data=none --weight_only_bits=4 --input_shape=1,16,16 \
  --latency_runs=2 --out="$out/w4.pt" > "$out/w4.txt" || fail "weight-only exited $?: $(cat "$out/w4.txt")"
grep -q "int4 weights" "$out/w4.txt" || fail "no int4 layers: $(cat "$out/w4.txt")"
"$quantize" --model=lenet5 --data=none 2> "$out/err.txt" && fail "int8 without data accepted"
grep -q -- "--data: int8 quantization calibrates on data" "$out/err.txt" || fail "unclear error: $(cat "$out/err.txt")"
"$quantize" --model=lenet5 --activation_observer=kl 2> "$out/err.txt" && fail "unknown observer accepted"
grep -q -- '--activation_observer: not an observer, got "kl"; valid: ' "$out/err.txt" || fail "unclear error: $(cat "$out/err.txt")"

echo "== train errors"
"$train" --data_dir="$out/nowhere" --epochs=1 --out="$out/x" 2> "$out/err.txt" && fail "missing data accepted"
grep -q "nowhere/train-images-idx3-ubyte.gz" "$out/err.txt" || fail "unclear error: $(cat "$out/err.txt")"


"$train" --optimizer=lion --out="$out/x" 2> "$out/err.txt" && fail "unknown optimizer accepted"
grep -q -- '--optimizer: not an optimizer preset, got "lion"; valid: sgd, adam' "$out/err.txt" || fail "unclear error: $(cat "$out/err.txt")"

echo "PASS"
