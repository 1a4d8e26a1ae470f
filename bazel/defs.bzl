"""Build macros for slimfit: the one place that carries shared compiler flags.

Every C++ target of ours goes through these, so `-Wall -Werror` applies to our
code (system headers are exempt: they sit on the compiler's system path).
"""

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

def slimfit_cc_library(name, copts = [], **kwargs):
    native.cc_library(name = name, copts = SLIMFIT_COPTS + copts, **kwargs)

def slimfit_cc_binary(name, copts = [], **kwargs):
    native.cc_binary(name = name, copts = SLIMFIT_COPTS + copts, **kwargs)

def slimfit_cc_test(name, copts = [], deps = [], size = "small", **kwargs):
    """A gtest test linked with gmock_main. Small unless told otherwise."""
    native.cc_test(
        name = name,
        size = size,
        copts = SLIMFIT_COPTS + copts,
        deps = deps + ["//third_party:gtest_main"],
        **kwargs
    )

def slimfit_cc_benchmark(name, copts = [], deps = [], tags = [], **kwargs):
    """A Google Benchmark binary: testonly, tagged `benchmark`, run with `bazel run`."""
    native.cc_binary(
        name = name,
        testonly = True,
        copts = SLIMFIT_COPTS + copts,
        deps = deps + ["//third_party:benchmark_main"],
        tags = tags + ["benchmark"],
        **kwargs
    )

def slimfit_proto(name, srcs, deps = [], visibility = None):
    """proto_library `<name>_proto` + cc_proto_library `<name>_cc_proto`."""
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

def slimfit_cc_fuzz_test(name, srcs, deps = [], corpus = None, **kwargs):
    """A libFuzzer entry point (`LLVMFuzzerTestOneInput`) and its corpus.

    Two targets:
      <name>:         a test (any compiler, part of `bazel test //...`) that
                      feeds every file of the corpus to the entry point: the
                      checked-in seeds and every input that once crashed.
      <name>_fuzzer:  the libFuzzer binary (tagged manual): build with
                      `--config=fuzz` (clang-14, ASan + UBSan + coverage),
                      run with tools/fuzz/run.sh.
    The corpus is `testdata/fuzz/<name>/` beside the BUILD file unless given.
    """
    corpus = corpus or "testdata/fuzz/" + name
    native.cc_test(
        name = name,
        size = "small",
        srcs = srcs,
        copts = SLIMFIT_COPTS,
        deps = deps + ["//bazel:fuzz_replay_main"],
        data = native.glob([corpus + "/**"]),
        args = [native.package_name() + "/" + corpus],
        tags = ["bad_input", "fuzz"],
        **kwargs
    )
    native.cc_binary(
        name = name + "_fuzzer",
        testonly = True,
        srcs = srcs,
        copts = SLIMFIT_COPTS,
        linkopts = ["-fsanitize=fuzzer"],
        deps = deps,
        tags = ["manual", "fuzzer"],
        **kwargs
    )
