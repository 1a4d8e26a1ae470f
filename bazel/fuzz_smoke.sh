#!/usr/bin/env bash
# The <name>_smoke test of slimfit_cc_fuzz_test (bazel/defs.bzl): runs a
# libFuzzer binary for $FUZZ_SECONDS (default 60) from a scratch copy of its
# checked-in corpus and fails on any crash, leak, timeout, out-of-memory or
# sanitizer report. Prints one line: the executions run and what was found.
# libFuzzer's own log and any crashing input land in the test's undeclared
# outputs (bazel-testlogs/<pkg>/<name>_smoke/test.outputs/): add the input to
# the corpus once fixed, so the replay test keeps it fixed.
#   usage: fuzz_smoke.sh FUZZER CORPUS_DIR LABEL
set -uo pipefail
fuzzer="$1" corpus="$2" label="$3"
secs="${FUZZ_SECONDS:-60}"
work="${TEST_TMPDIR:-$(mktemp -d)}/fuzz"
found="${TEST_UNDECLARED_OUTPUTS_DIR:-$work}"
mkdir -p "$work/corpus" "$found"
cp -r "$corpus/." "$work/corpus/"
log="$found/libfuzzer.log"
"$fuzzer" -max_total_time="$secs" -timeout=25 -rss_limit_mb=4096 -print_final_stats=1 \
  -artifact_prefix="$found/" "$work/corpus" > "$log" 2>&1
rc=$?
runs="$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)"
artifacts=$(find "$found" -maxdepth 1 -name 'crash-*' -o -maxdepth 1 -name 'leak-*' \
  -o -maxdepth 1 -name 'timeout-*' -o -maxdepth 1 -name 'oom-*' | wc -l)
echo "fuzz smoke $label: ${runs:-?} executions in ${secs} s, $artifacts crash(es), exit $rc"
if [[ $rc -ne 0 || $artifacts -ne 0 ]]; then
  grep -E "ERROR|SUMMARY|runtime error|#[0-9]+ 0x" "$log" | head -40
  echo "full log and inputs: $found"
  exit 1
fi
