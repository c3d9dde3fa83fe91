"""The portable build against a -march=native build of the same sources, side by side.

The installed chainrule is the portable one (baseline + x86-64-v3 + x86-64-v4 modules, one
chosen at import). This script builds the same checkout with -DCHAINRULE_NATIVE=ON into a
separate directory (or uses --native-dir from an earlier run), then times training of
784-256-128-10 (SGD momentum 0.9, float32, 1 thread) at several batch sizes in fresh
subprocesses, alternating the two builds round by round, and prints the medians and the gap.

    python benchmarks/bench_native.py                    # builds into build/native-target
    python benchmarks/bench_native.py --native-dir DIR   # reuse a build
"""

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from fresh_process import EPILOGUE, PRELUDE, TRAINING, run_snippet

ROOT = Path(__file__).resolve().parents[1]

CHILD = PRELUDE + TRAINING + EPILOGUE


def build_native(target):
    print(f"building the -march=native variant into {target} ...", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--upgrade", "--target", str(target),
                    f"-Cbuild-dir={ROOT / 'build' / 'native'}",
                    "-Ccmake.define.CHAINRULE_NATIVE=ON", str(ROOT)], check=True)


def with_pythonpath(directory):
    """PYTHONPATH with directory in front, or None to leave it as it is."""
    if directory is None:
        return None
    return str(directory) + os.pathsep + os.environ.get("PYTHONPATH", "")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--native-dir", type=Path, help="an existing --target install of the native build")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--samples", type=int, default=16384)
    p.add_argument("--batches", default="32,128,1024")
    args = p.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    native_dir = (args.native_dir or ROOT / "build" / "native-target").resolve()  # children run in /
    if args.native_dir is None:
        build_native(native_dir)

    runs = {"portable": [], "native": []}
    for _ in range(args.rounds):
        runs["portable"].append(run_snippet(CHILD, args.samples, batches))
        runs["native"].append(run_snippet(CHILD, args.samples, batches,
                                               PYTHONPATH=with_pythonpath(native_dir)))
    isa = {k: v[0]["isa"] for k, v in runs.items()}
    assert isa["native"] == "native", f"the native build was not the one imported: {runs['native'][0]}"
    print(f"portable build: {isa['portable']} module; native build: -march=native; "
          f"{args.samples} samples, median of {args.rounds} alternating rounds, 1 thread\n")
    print("| batch | portable samples/s | native samples/s | portable / native |")
    print("|---|---|---|---|")
    for b in batches:
        port = statistics.median(r[f"train {b}"] for r in runs["portable"])
        nat = statistics.median(r[f"train {b}"] for r in runs["native"])
        print(f"| {b} | {port:,.0f} | {nat:,.0f} | {port / nat:.3f} |")


if __name__ == "__main__":
    main()
