"""Build macros for slimfit: the one place that carries shared compiler flags.

Libraries made with slimfit_cc_library / slimfit_proto are also checked
against the layering (bazel/layers.bzl).

Every C++ target of ours goes through these, so `-Wall -Werror` applies to our
code (system headers are exempt: they sit on the compiler's system path).
"""

load("//bazel:layers.bzl", "check_layering")

SLIMFIT_COPTS = [
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
    # Aggregates with default member initialisers are initialised partially on purpose.
    "-Wno-missing-field-initializers",
] + select({
    # clang (the fuzz config) warns where gcc does not: report, do not fail.
    "//bazel:fuzz": [],
    "//conditions:default": ["-Werror"],
})

def slimfit_cc_library(name, copts = [], deps = [], **kwargs):
    check_layering(name, deps, kwargs.get("testonly", False))
    native.cc_library(name = name, copts = SLIMFIT_COPTS + copts, deps = deps, **kwargs)

# Sanitizer defaults and LibTorch's LSan suppressions (inert in normal builds).
_SANITIZER_OPTIONS = "//bazel:sanitizer_options"

def slimfit_cc_binary(name, copts = [], deps = [], **kwargs):
    native.cc_binary(name = name, copts = SLIMFIT_COPTS + copts, deps = deps + [_SANITIZER_OPTIONS], **kwargs)

def slimfit_cc_test(name, copts = [], deps = [], size = "small", **kwargs):
    """A gtest test linked with gmock_main. Small unless told otherwise."""
    native.cc_test(
        name = name,
        size = size,
        copts = SLIMFIT_COPTS + copts,
        deps = deps + ["//third_party:gtest_main", _SANITIZER_OPTIONS],
        **kwargs
    )

def slimfit_cc_benchmark(name, copts = [], deps = [], tags = [], **kwargs):
    """A Google Benchmark binary: testonly, tagged `benchmark`, run with `bazel run`."""
    native.cc_binary(
        name = name,
        testonly = True,
        copts = SLIMFIT_COPTS + copts,
        deps = deps + ["//third_party:benchmark_main", _SANITIZER_OPTIONS],
        tags = tags + ["benchmark"],
        **kwargs
    )

def slimfit_proto(name, srcs, deps = [], visibility = None):
    """proto_library `<name>_proto` + cc_proto_library `<name>_cc_proto`."""
    check_layering(name, deps)
    native.proto_library(
        name = name + "_proto",
        srcs = srcs,
        deps = [d + "_proto" for d in deps],
        visibility = visibility,
    )
    native.cc_proto_library(
        name = name + "_cc_proto",
        deps = [":" + name + "_proto"],
        visibility = visibility,
    )

# Outside --config=fuzz the libFuzzer halves cannot link (gcc has no
# -fsanitize=fuzzer): there they are incompatible and `//...` skips them.
_FUZZ_ONLY = select({
    "//bazel:fuzz": [],
    "//conditions:default": ["//bazel:incompatible"],
})

def slimfit_cc_fuzz_test(name, srcs, deps = [], corpus = None, **kwargs):
    """A libFuzzer entry point (`LLVMFuzzerTestOneInput`) and its corpus.

    Three targets:
      <name>:         a test (any compiler, part of `bazel test //...`, tagged
                      `bad_input`) that feeds every file of the corpus to the
                      entry point: the checked-in seeds and every input that
                      once crashed.
      <name>_fuzzer:  the libFuzzer binary (clang-14, ASan + UBSan + coverage).
      <name>_smoke:   a test that fuzzes for $FUZZ_SECONDS (default 60) from a
                      copy of the corpus and fails on any crash, leak, timeout
                      or sanitizer report, printing the executions run.
    The last two exist only under `--config=fuzz` (elsewhere they are
    incompatible and skipped): `bazel test --config=fuzz //...`.
    The corpus is `testdata/fuzz/<name>/` beside the BUILD file unless given.
    """
    corpus = corpus or "testdata/fuzz/" + name
    corpus_files = native.glob([corpus + "/**"])
    corpus_path = native.package_name() + "/" + corpus
    native.cc_test(
        name = name,
        size = "small",
        srcs = srcs,
        copts = SLIMFIT_COPTS,
        deps = deps + ["//bazel:fuzz_replay_main", _SANITIZER_OPTIONS],
        data = corpus_files,
        args = [corpus_path],
        tags = ["bad_input", "fuzz"],
        **kwargs
    )
    native.cc_binary(
        name = name + "_fuzzer",
        testonly = True,
        srcs = srcs,
        copts = SLIMFIT_COPTS,
        linkopts = ["-fsanitize=fuzzer"],
        deps = deps + [_SANITIZER_OPTIONS],
        tags = ["fuzzer"],
        target_compatible_with = _FUZZ_ONLY,
        **kwargs
    )
    native.sh_test(
        name = name + "_smoke",
        size = "medium",
        srcs = ["//bazel:fuzz_smoke.sh"],
        data = corpus_files + [":" + name + "_fuzzer"],
        args = [
            "$(rootpath :" + name + "_fuzzer)",
            corpus_path,
            "//" + native.package_name() + ":" + name,
        ],
        # `external`: never a cached pass — each run fuzzes afresh (random
        # seeds), or a cache hit would stand in for the fuzzing.
        tags = ["fuzz_smoke", "external"],
        target_compatible_with = _FUZZ_ONLY,
    )
