# Where LibTorch lives: the one setting in the project that knows the path.
#
# By default LibTorch is the one inside PyTorch's own wheel from PyPI
# (`torch/include` and `torch/lib` of the wheel are LibTorch), installed by
# ./bootstrap.sh into a virtual environment kept once per machine, outside any
# clone (like Bazel's disk cache): a fresh clone, and CI, reuse it. The venv's
# Python (with the same torch) runs the interop tests.
#
# A user with their own LibTorch 2.x points the build at it, in user.bazelrc:
#
#   build --repo_env=SLIMFIT_LIBTORCH=/opt/libtorch        # has include/ and lib/
#   build --repo_env=SLIMFIT_PYTHON=/path/to/python        # optional: a Python with torch
#
# bootstrap.sh reads LIBTORCH_VERSION, TORCHVISION_VERSION and LIBTORCH_VENV below (keep each on one
# line, `NAME = "value"`).

LIBTORCH_VERSION = "2.11.0"
TORCHVISION_VERSION = "0.26.0"
LIBTORCH_VENV = "~/.cache/slimfit/torch-2.11.0"

# ONNX Runtime and onnx from PyPI in the same venv: //export's tests run every
# exported model in the real runtime (bootstrap.sh installs them).
ONNXRUNTIME_VERSION = "1.32.0"
ONNX_PY_VERSION = "1.23.2"

def _fail(msg):
    fail("\n[slimfit] LibTorch: " + msg + "\n[slimfit] run ./bootstrap.sh, or set --repo_env=SLIMFIT_LIBTORCH=<a LibTorch 2.x with include/ and lib/> (third_party/libtorch.bzl)")

def _child(rctx, root, sub):
    # Bazel 4's path.get_child takes one name, not a relative path.
    return rctx.path(str(root) + "/" + sub)

def _venv_root(rctx):
    home = rctx.os.environ.get("HOME", "")
    if LIBTORCH_VENV.startswith("~"):
        if not home:
            _fail("HOME is not set, so " + LIBTORCH_VENV + " cannot be found")
        return home + LIBTORCH_VENV[1:]
    return LIBTORCH_VENV

def _site_torch(rctx, venv):
    lib = rctx.path(venv + "/lib")
    if not lib.exists:
        _fail("no virtual environment at " + venv)
    for py in lib.readdir():
        if py.basename.startswith("python"):
            torch = rctx.path(str(py) + "/site-packages/torch")
            if rctx.path(str(torch) + "/include").exists:
                return torch
    _fail("no torch with include/ under " + venv + "/lib/python*/site-packages")

def _version(rctx, root):
    # "2.11.0" from TORCH_VERSION_{MAJOR,MINOR,PATCH} (torch/headeronly in 2.x,
    # torch/csrc/api/include/torch in 1.x).
    parts = {}
    for header in ["include/torch/headeronly/version.h", "include/torch/csrc/api/include/torch/version.h"]:
        if _child(rctx, root, header).exists:
            for line in rctx.read(_child(rctx, root, header)).splitlines():
                words = [w for w in line.replace("\t", " ").split(" ") if w]
                if len(words) == 3 and words[0] == "#define" and words[1].startswith("TORCH_VERSION_"):
                    parts[words[1][len("TORCH_VERSION_"):]] = words[2]
    if not ("MAJOR" in parts and "MINOR" in parts and "PATCH" in parts):
        _fail(str(root) + ": no TORCH_VERSION_MAJOR/MINOR/PATCH in its headers")
    return "%s.%s.%s" % (parts["MAJOR"], parts["MINOR"], parts["PATCH"])

def _libtorch_impl(rctx):
    root = rctx.os.environ.get("SLIMFIT_LIBTORCH", "")
    python = rctx.os.environ.get("SLIMFIT_PYTHON", "")
    if root:
        root = rctx.path(root)
    else:
        venv = _venv_root(rctx)
        root = _site_torch(rctx, venv)
        if not python:
            python = venv + "/bin/python3"
    for sub in ["include/torch/csrc/api/include/torch/torch.h", "lib/libtorch_cpu.so", "lib/libc10.so"]:
        if not _child(rctx, root, sub).exists:
            _fail(str(root) + " has no " + sub)

    # The include root, without the headers the wheel bundles for its own
    # use (protobuf, pybind11): slimfit compiles against Debian's protobuf,
    # and the wheel's copy must not shadow it.
    for entry in _child(rctx, root, "include").readdir():
        if entry.basename not in ["google", "pybind11"]:
            rctx.symlink(entry, "include/" + entry.basename)
    rctx.symlink(_child(rctx, root, "lib"), "lib")

    # A wrapper, not a symlink: a venv's Python finds its venv (pyvenv.cfg)
    # from the path it was started by, which a symlink would hide.
    if python:
        rctx.file("python", "#!/bin/sh\nexec '%s' \"$@\"\n" % python, executable = True)
    else:
        rctx.file("python", "#!/bin/sh\necho 'no Python with torch: set --repo_env=SLIMFIT_PYTHON=<python> (third_party/libtorch.bzl)' >&2\nexit 1\n", executable = True)

    found = _version(rctx, root)
    if int(found.split(".")[0]) < 2:
        _fail(str(root) + " is LibTorch " + found + "; slimfit needs 2.x (it is built and tested on " + LIBTORCH_VERSION + ")")
    rctx.file("VERSION", found + "\n")

    rctx.template("BUILD.bazel", rctx.attr.build_template, {
        "%{lib}": str(_child(rctx, root, "lib")),
        "%{version}": found,
        "%{torch_cuda}": _torch_cuda(rctx, root),
    })

def _torch_cuda(rctx, root):
    """The torch_cuda target: LibTorch's CUDA half and the CUDA runtime it uses.

    A CPU-only LibTorch has no libtorch_cuda.so: then the target is
    incompatible, and `//...` skips what depends on it (the CUDA kernels,
    NCCL) instead of failing to link.
    """
    lib = _child(rctx, root, "lib")
    if not _child(rctx, root, "lib/libtorch_cuda.so").exists:
        return """cc_library(
    name = "torch_cuda",
    target_compatible_with = ["@//bazel:incompatible"],
    deps = [":torch"],
)"""

    # The CUDA runtime LibTorch itself loads (the wheel's nvidia/cu*/lib, or
    # a standalone LibTorch's lib/), so a process holds one copy of it.
    cudart = ""
    nvidia = rctx.path(str(root) + "/../nvidia")
    if nvidia.exists:
        for package in nvidia.readdir():
            libdir = rctx.path(str(package) + "/lib")
            if libdir.exists:
                for f in libdir.readdir():
                    if f.basename.startswith("libcudart.so."):
                        cudart = str(f)
    if not cudart:
        for f in lib.readdir():
            if f.basename.startswith("libcudart") and ".so" in f.basename:
                cudart = str(f)
    runtime = ('"-Wl,-rpath,%s",\n        "%s",' % (str(rctx.path(cudart).dirname), cudart)) if cudart else '"-L/usr/local/cuda/lib64",\n        "-lcudart",'
    return """cc_library(
    name = "torch_cuda",
    linkopts = [
        "-Wl,--no-as-needed",
        "%s/libtorch_cuda.so",
        "%s/libc10_cuda.so",
        %s
        "-Wl,--as-needed",
    ],
    deps = [":torch", "@cuda//:headers"],
)""" % (str(lib), str(lib), runtime)

libtorch_repository = repository_rule(
    implementation = _libtorch_impl,
    attrs = {"build_template": attr.label(default = Label("//third_party:libtorch.BUILD.tpl"))},
    environ = ["SLIMFIT_LIBTORCH", "SLIMFIT_PYTHON", "HOME"],
    local = True,
)

