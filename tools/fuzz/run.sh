#!/usr/bin/env bash
# Fuzz smoke: builds every libFuzzer target (slimfit_cc_fuzz_test's
# <name>_fuzzer, tagged `fuzzer`) with clang-14 + ASan + UBSan in its own
# output base, runs each for SECONDS on a scratch copy of its checked-in
# corpus, and prints the executions run and crashes found per target.
#
#   tools/fuzz/run.sh              # 60 s per target
#   tools/fuzz/run.sh 10 //data:idx_fuzz_test_fuzzer
#
# A crash leaves its input under $FUZZ_OUT (default /tmp/slimfit-fuzz) as
# crash-*: add it to the target's corpus (testdata/fuzz/<name>/) after the
# fix, so the replay test in `bazel test //...` keeps it fixed. Exit status:
# 0 when no target crashed.
set -uo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-60}"
shift || true
out="${FUZZ_OUT:-/tmp/slimfit-fuzz}"
base="${FUZZ_OUTPUT_BASE:-$HOME/.cache/slimfit-fuzz-output-base}"
bz=(bazel --output_base="$base")
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  # (queried in the main output base: the other one would walk into the bazel-* symlinks)
  mapfile -t targets < <(bazel query 'attr(tags, "\bfuzzer\b", //...)' 2>/dev/null)
fi
[[ ${#targets[@]} -gt 0 ]] || { echo "no fuzz targets found"; exit 1; }
"${bz[@]}" build --config=fuzz --symlink_prefix=/ "${targets[@]}" || exit 1
bin_dir="$("${bz[@]}" info --config=fuzz bazel-bin 2>/dev/null)"
rm -rf "$out"
mkdir -p "$out"
# (libFuzzer's leak check stays on; LibTorch's one-time allocations are
# suppressed by bazel/sanitizer_options.cc, linked into every target)
failed=0
printf '%-44s %12s %10s %8s\n' target executions "exec/s" crashes
for t in "${targets[@]}"; do
  pkg="${t#//}"; pkg="${pkg%%:*}"; name="${t##*:}"; base_name="${name%_fuzzer}"
  work="$out/$base_name"
  mkdir -p "$work/corpus"
  cp -r "$pkg/testdata/fuzz/$base_name/." "$work/corpus/" 2>/dev/null || true
  log="$work/log.txt"
  (cd "$work" && TEST_TMPDIR="$work" "$bin_dir/$pkg/$name" -max_total_time="$secs" -timeout=25 -rss_limit_mb=4096 \
      -artifact_prefix="$work/" corpus > "$log" 2>&1)
  rc=$?
  runs="$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' | tail -1)"
  crashes=$(ls "$work" | grep -cE '^(crash|leak|timeout|oom)-' || true)
  rate=$([[ -n "$runs" ]] && echo $(( runs / (secs > 0 ? secs : 1) )) || echo "-")
  printf '%-44s %12s %10s %8s\n' "$t" "${runs:-?}" "$rate" "$crashes"
  if [[ $rc -ne 0 || $crashes -gt 0 ]]; then
    failed=1
    tail -30 "$log"
  fi
done
exit $failed
