"""The layering of slimfit's libraries, checked whenever a BUILD file loads.

docs/architecture.md explains the layers. A library (slimfit_cc_library,
slimfit_proto; not testonly ones) may depend on its own package, on external
repositories and on packages of *lower* layers only: a dependency that
reaches up or sideways fails the build of every target in its package, at
loading time, naming both ends and the layers. Targets stay publicly
visible (users depend on single targets from their own repositories, which
Bazel visibility lists cannot name), so this check, not visibility, is what
keeps the architecture.

Tests, binaries, benchmarks and testonly helpers are leaves and may use
anything below them; a package of ours that is not listed here fails too,
so a new package gets a layer when it is made.
"""

# Lowest first. Packages in one layer may not depend on each other.
LAYERS = [
    ["bazel", "third_party"],
    ["common"],
    ["data", "kernels", "model"],
    ["forward_pass", "graph", "model/zoo"],
    ["losses", "export"],
    ["evaluators", "optimizers"],
    ["distributed"],
    ["trainer"],
    ["pruners", "quantizers"],
    ["search"],
    # Leaves: binaries, benchmarks, examples, data. Nothing below uses them.
    [
        "",
        "examples",
        "examples/external_workspace",
        "experiments",
        "model/interop",
        "pruners/benchmark",
        "quantizers/benchmark",
        "third_party/cuda_smoke",
        "tools",
        "tools/torchvision",
        "trainer/benchmark",
    ],
]

def _layer_of(package):
    for i, layer in enumerate(LAYERS):
        if package in layer:
            return i
    return None

def _package_of(label, here):
    """The package a dependency label names (None: another repository)."""
    if label.startswith("@"):
        return None
    if label.startswith("//"):
        return label[2:].split(":")[0]
    return here  # ":name" or "name": this package

def layering_violation(package, dep):
    """Why `package` may not depend on label `dep`, or None when it may."""
    there = _package_of(dep, package)
    if there == None or there == package:
        return None
    mine, theirs = _layer_of(package), _layer_of(there)
    for p, layer in [(package, mine), (there, theirs)]:
        if layer == None:
            return "package %s has no layer: add it to LAYERS in bazel/layers.bzl (docs/architecture.md)" % p
    if theirs < mine:
        return None
    return "%s (layer %d) may not depend on %s (layer %d): a library depends only on lower layers (bazel/layers.bzl, docs/architecture.md)" % (
        package,
        mine,
        there,
        theirs,
    )

def check_layering(name, deps, testonly = False):
    """fail()s when library `name` of this package depends upward or sideways."""
    if testonly or type(deps) != "list":
        return
    package = native.package_name()
    for dep in deps:
        why = layering_violation(package, dep)
        if why != None:
            fail("//%s:%s depends on %s: %s" % (package, name, dep, why))

def layering_self_test():
    """fail()s when layering_violation misjudges a known case (loads with //bazel)."""
    cases = [
        # (package, dep, allowed)
        ("pruners", "//search:engine", False),  # up
        ("pruners", "//quantizers:int8", False),  # sideways
        ("search", "//pruners:prune", True),  # down
        ("search", ":decision", True),  # own package
        ("search", "//search:decision", True),
        ("model", "@com_google_absl//absl/status", True),  # another repository
        ("common", "//third_party:absl", True),
        ("tools", "//search:setup", True),
        ("search", "//tools:cli", False),
        ("search", "//nowhere:x", False),  # a package without a layer
    ]
    for package, dep, allowed in cases:
        why = layering_violation(package, dep)
        if (why == None) != allowed:
            fail("layering_self_test: %s -> %s should be %s, got %s" % (package, dep, "allowed" if allowed else "refused", why))
