#!/usr/bin/env bash
# Minimal lcov merger for offline `bazel coverage`: concatenates every .dat /
# lcov file found under --coverage_dir into --output_file.
set -euo pipefail
out=""; dir=""
for a in "$@"; do
  case "$a" in
    --output_file=*) out="${a#*=}" ;;
    --coverage_dir=*) dir="${a#*=}" ;;
  esac
done
[[ -n "$out" ]] || exit 0
: > "$out"
if [[ -n "$dir" && -d "$dir" ]]; then
  find "$dir" -type f \( -name '*.dat' -o -name '*.info' \) -exec cat {} + >> "$out" || true
fi
