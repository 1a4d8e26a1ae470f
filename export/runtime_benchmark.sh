#!/usr/bin/env bash
# //export:runtime_benchmark: runtime_benchmark.py with the venv's Python and
# //tools:export (paths made absolute: the script runs from the runfiles).
set -euo pipefail
py="$(realpath "$1")" script="$(realpath "$2")" export_tool="$(realpath "$3")"
shift 3
cd "${BUILD_WORKING_DIRECTORY:-.}"
exec "$py" "$script" --export_tool="$export_tool" "$@"
