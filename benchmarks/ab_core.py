"""Compare two versions of the C++ core in one process, call by call.

On a shared, noisy machine the same build can train 30 % faster or slower from one process to
the next, so two builds timed in separate processes cannot be told apart by a few percent.
This script compiles `cpp/` of two git revisions (or the working tree) into two shared
libraries with hidden symbols, loads both into this process, and alternates them: each round
runs A, B, B, A. It reports the median time ratio A/B per point, and first the same for A
against a copy of itself: that control is the harness's own error (which library is loaded
first, where its code lands), and differences inside it mean nothing.

    python benchmarks/ab_core.py --a HEAD~1 --b WORKTREE          # ~3 min with compiling
    python benchmarks/ab_core.py --a main --b my-branch --rounds 9 --flags "-march=x86-64-v3"
    python benchmarks/ab_core.py --a HEAD --optimizer adam         # the training points with Adam

Both revisions must have the core's current Network interface (train_batches with an order
pointer, predict). The net is 784-256-128-10, ReLU/softmax, SGD momentum 0.9 (or --optimizer
adam), on --threads threads (default 1).
"""

import argparse
import ctypes
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "benchmarks" / "ab_core_harness.cpp"


def eigen_include():
    for candidate in (os.environ.get("EIGEN3_INCLUDE_DIR"), "/usr/include/eigen3"):
        if candidate and (Path(candidate) / "Eigen" / "Core").exists():
            return candidate
    try:  # the PyPI package cmeel-eigen, as the build uses
        prefix = subprocess.run([sys.executable, "-m", "cmeel", "cmake"], capture_output=True,
                                text=True, check=True).stdout.strip()
        include = Path(prefix) / "include" / "eigen3"
        if (include / "Eigen" / "Core").exists():
            return str(include)
    except (OSError, subprocess.CalledProcessError):
        pass
    sys.exit("Eigen 3.4 not found: pip install cmeel-eigen, or set EIGEN3_INCLUDE_DIR")


def default_flags():
    """The level the package itself loads on this CPU (the rule in chainrule/_dispatch.py)."""
    path = ROOT / "python" / "chainrule" / "_dispatch.py"
    spec = importlib.util.spec_from_file_location("_dispatch", path)
    dispatch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dispatch)
    levels = dispatch.supported_levels()
    if dispatch.prefers_avx2_over_avx512():
        levels = [level for level in levels if level != "v4"]
    return f"-march=x86-64-{levels[0]} -mtune=generic" if levels else ""


def core_sources(revision, workdir):
    """The cpp/ directory of `revision` (WORKTREE: the checkout as it is)."""
    if revision == "WORKTREE":
        return ROOT / "cpp"
    target = workdir / revision.replace("/", "_")
    target.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "cpp"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / "cpp"


def build(cpp, output, flags, eigen):
    # The compile options CMakeLists.txt gives the core (-fno-math-errno lets the optimizer
    # loops that take square roots vectorize).
    command = (["g++", "-std=c++17", "-O3", "-DNDEBUG", "-fopenmp", "-DEIGEN_DONT_PARALLELIZE",
                "-fno-math-errno", "-fPIC", "-shared", "-fvisibility=hidden", "-fvisibility-inlines-hidden",
                "-Wl,-Bsymbolic"] + flags.split()
               + ["-I", str(cpp), "-I", eigen, str(HARNESS), str(cpp / "chainrule" / "network.cpp"),
                  str(cpp / "chainrule" / "threads.cpp"), "-o", str(output)])
    subprocess.run(command, check=True)


def load(path, threads, adam):
    lib = ctypes.CDLL(str(path), mode=ctypes.RTLD_LOCAL)
    lib.ab_use_adam(int(adam))
    lib.ab_train_seconds.restype = ctypes.c_double
    lib.ab_train_seconds.argtypes = [ctypes.c_long, ctypes.c_long]
    lib.ab_predict_seconds.restype = ctypes.c_double
    lib.ab_predict_seconds.argtypes = [ctypes.c_long, ctypes.c_long]
    lib.ab_set_threads(threads)
    return lib


POINTS = [("train", 32, 4096), ("train", 128, 8192), ("train", 256, 8192), ("train", 1024, 8192),
          ("predict", 1, 2000), ("predict", 1024, 20)]


def run_point(lib, kind, size, amount):
    if kind == "train":
        return lib.ab_train_seconds(size, amount)
    return lib.ab_predict_seconds(size, amount)


def compare(a, b, rounds):
    """{point: (median, first quartile, third quartile) of time(A) / time(B)}."""
    results = {}
    for kind, size, amount in POINTS:
        a.ab_reset(), b.ab_reset()  # the same weights, and from here the same steps
        run_point(a, kind, size, amount), run_point(b, kind, size, amount)  # warm-up
        ratios = []
        for _ in range(rounds):
            t_a = run_point(a, kind, size, amount)
            t_b = run_point(b, kind, size, amount) + run_point(b, kind, size, amount)
            t_a += run_point(a, kind, size, amount)
            ratios.append(t_a / t_b)
        q1, median, q3 = statistics.quantiles(ratios, n=4) if rounds > 1 else [ratios[0]] * 3
        results[f"{kind} {'batch' if kind == 'train' else 'rows'} {size}"] = (median, q1, q3)
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", default="HEAD", help="git revision, or WORKTREE (default: HEAD)")
    p.add_argument("--b", default="WORKTREE", help="git revision, or WORKTREE (default)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd",
                   help="sgd: momentum 0.9 (default); adam: the default betas, lr 0.001")
    p.add_argument("--flags", default=None,
                   help="-march flags (default: the level the package loads on this CPU)")
    args = p.parse_args()
    flags = default_flags() if args.flags is None else args.flags
    eigen = eigen_include()
    # How OpenMP workers wait, as `import chainrule` sets it (it matters with --threads 2).
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = "10000"
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        libs = {}
        for name, revision in (("a", args.a), ("b", args.b)):
            print(f"building {name} = {revision} ({flags or 'baseline'})", flush=True)
            libs[name] = workdir / f"lib_{name}.so"
            build(core_sources(revision, workdir), libs[name], flags, eigen)
        shutil.copy(libs["a"], workdir / "lib_a_copy.so")
        adam = args.optimizer == "adam"
        a, a_copy, b = (load(libs["a"], args.threads, adam),
                        load(workdir / "lib_a_copy.so", args.threads, adam),
                        load(libs["b"], args.threads, adam))
        print(f"\n{args.rounds} rounds of A, B, B, A on {args.threads} thread(s), "
              f"{args.optimizer}; time ratios, "
              "median [quartiles]; "
              "< 1 means A is faster\n")
        control = compare(a, a_copy, args.rounds)
        versus = compare(a, b, args.rounds)
    print(f"| point | A / A's copy (the harness's own error) | A / B: {args.a} / {args.b} |")
    print("|---|---|---|")
    def cell(median, q1, q3):
        return f"{median:.3f} [{q1:.3f}, {q3:.3f}]"

    for point in control:
        print(f"| {point} | {cell(*control[point])} | {cell(*versus[point])} |")


if __name__ == "__main__":
    main()
