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
    "-Werror",
]

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
