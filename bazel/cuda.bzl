"""CUDA kernels of our own, compiled by the toolkit's nvcc (/usr/local/cuda).

slimfit_cuda_library(name, srcs = ["x.cu"], hdrs = [...]) compiles each .cu
with nvcc in a genrule and wraps the objects in a cc_library. The .cu files
see only the CUDA runtime and their own headers (no LibTorch: nvcc would
spend minutes on its headers); a C++ wrapper compiled by gcc turns tensors
into pointers (//kernels). `runtime` is the CUDA runtime they link:
LibTorch's (//third_party:torch_cuda) for kernels that run beside LibTorch,
the toolkit's (//third_party:cudart) otherwise.

Built by every `bazel build //...` (CI too: nvcc needs no GPU), for sm_90
(Hopper: the H200 the GPU check runs on) and as compute_80 PTX, which the
driver compiles for any GPU from Ampere on.
"""

NVCC = "/usr/local/cuda/bin/nvcc"

NVCC_FLAGS = " ".join([
    "-std=c++17",
    "-O3",
    "-Xcompiler -fPIC",
    "-Werror all-warnings",
    "-gencode arch=compute_90,code=sm_90",
    "-gencode arch=compute_80,code=compute_80",
])

def slimfit_cuda_library(name, srcs, hdrs = [], deps = [], runtime = "//third_party:cudart", tags = [], **kwargs):
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
            tags = tags,
        )
        objs.append(obj)
    native.cc_library(
        name = name,
        srcs = objs,
        hdrs = hdrs,
        deps = deps + [runtime],
        tags = tags,
        **kwargs
    )
