"""CUDA kernels of our own, compiled by the toolkit's nvcc (/usr/local/cuda).

slimfit_cuda_library(name, srcs = ["x.cu"], hdrs = [...]) compiles each .cu
with nvcc in a genrule and wraps the objects in a cc_library linked with
cudart. Kernels are optional accelerations with CPU fallbacks: targets using
this are tagged "manual" (never built by `bazel test //...`) and selected by
`--config=cuda` users.
"""

NVCC = "/usr/local/cuda/bin/nvcc"

NVCC_FLAGS = "-std=c++17 -O2 -Xcompiler -fPIC -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90"

def slimfit_cuda_library(name, srcs, hdrs = [], deps = [], tags = [], **kwargs):
    objs = []
    for src in srcs:
        obj = name + "_" + src.replace("/", "_").replace(".cu", ".o")
        native.genrule(
            name = obj + "_nvcc",
            srcs = [src] + hdrs,
            outs = [obj],
            # nvcc by absolute path: through Bazel's symlink it cannot find
            # its own include/ and nvcc.profile (it resolves them from argv[0]).
            cmd = "%s %s -I. -c $(location %s) -o $@" % (NVCC, NVCC_FLAGS, src),
            tags = tags + ["manual"],
        )
        objs.append(obj)
    native.cc_library(
        name = name,
        srcs = objs,
        hdrs = hdrs,
        deps = deps + ["//third_party:cudart"],
        tags = tags + ["manual"],
        **kwargs
    )
