#!/usr/bin/env bash
# `bazel run //third_party:python_run -- ARGS`: the venv's Python (the torch
# slimfit links, third_party/libtorch.bzl) run with ARGS from the directory
# `bazel run` was started in. For the repo's scripts that make test data:
#   bazel run //third_party:python_run -- graph/testdata/make_models.py graph/testdata
set -euo pipefail
python="$PWD/$1"
shift
cd "${BUILD_WORKING_DIRECTORY:-.}"
exec "$python" "$@"
