"""The installed modules' x86-64 levels against each other on this CPU, to check the dispatch.

chainrule/_dispatch.py imports the best level the CPU supports, except on Zen 4 (AMD family
19h), where it keeps v3. This script measures whether that choice is right here: for each level
the CPU runs (CHAINRULE_ISA=...), in fresh subprocesses, the levels taking turns round by round,
it times a 1024^3 float32 GEMM, training of 784-256-128-10 (SGD momentum 0.9, float32, 1 thread)
at several batch sizes, and predictions of 1 and 1024 rows, then prints the medians and each
level's ratio to the one the dispatch picks.

    python benchmarks/isa_levels.py                       # ~2 minutes on 2 cores
    python benchmarks/isa_levels.py --rounds 9 --levels baseline,v3,v4
"""

import argparse
import os
import statistics
import subprocess
import sys

from fresh_process import EPILOGUE, PRELUDE, TRAINING, run_snippet

GEMM = r"""
n = 1024
a = rng.standard_normal((n, n), dtype=np.float32)
b = rng.standard_normal((n, n), dtype=np.float32)
c = np.empty((n, n), np.float32)
cr._core.matmul(a, b, c)
times = []
for _ in range(9):
    t = time.perf_counter(); cr._core.matmul(a, b, c); times.append(time.perf_counter() - t)
result["gemm"] = 2 * n**3 / statistics.median(times) / 1e9
"""

PREDICTION = r"""
model = cr.Sequential([cr.Dense(784, 256), cr.Dense(256, 128), cr.Dense(128, 10)], seed=0)
for rows, calls in ((1, 2000), (1024, 20)):
    x = X[:rows]
    for _ in range(calls // 10):
        model.predict_proba(x)
    t = time.perf_counter()
    for _ in range(calls):
        model.predict_proba(x)
    result[f"predict {rows}"] = (time.perf_counter() - t) / calls * 1e6
"""

CHILD = PRELUDE + GEMM + TRAINING + PREDICTION + EPILOGUE


def main():
    from chainrule import _dispatch

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--levels", default=None,
                   help="comma-separated levels (default: every built level this CPU runs)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--samples", type=int, default=16384)
    p.add_argument("--batches", default="32,128,1024")
    args = p.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    import importlib.util
    built = [lv for lv in _dispatch.supported_levels()[::-1]
             if importlib.util.find_spec(f"chainrule._core_{lv}") is not None]
    levels = args.levels.split(",") if args.levels else built
    chosen = subprocess.run([sys.executable, "-c", "import chainrule; print(chainrule._core.ISA)"],
                            env={k: v for k, v in os.environ.items() if k != "CHAINRULE_ISA"},
                            capture_output=True, text=True, check=True).stdout.strip()

    runs = {level: [] for level in levels}
    for _ in range(args.rounds):
        for level in levels:
            runs[level].append(run_snippet(CHILD, args.samples, batches, CHAINRULE_ISA=level))
    names = {level: runs[level][0]["isa"] for level in levels}
    vendor, family = _dispatch._cpu_vendor_family()
    print(f"CPU: {vendor} family {family:#x}; the dispatch loads {chosen} here; "
          f"median of {args.rounds} alternating rounds, 1 thread, {args.samples} samples\n")
    keys = ["gemm"] + [f"train {b}" for b in batches] + ["predict 1", "predict 1024"]
    units = {"gemm": "GFLOP/s", "predict 1": "µs", "predict 1024": "µs"}
    print("| point | " + " | ".join(names[level] for level in levels) + " |")
    print("|---|" + "---|" * len(levels))
    for key in keys:
        medians = {level: statistics.median(r[key] for r in runs[level]) for level in levels}
        base = next((medians[lv] for lv in levels if names[lv] == chosen), None)
        cells = []
        for level in levels:
            cell = f"{medians[level]:,.1f}" if medians[level] < 1000 else f"{medians[level]:,.0f}"
            if base and names[level] != chosen:
                # > 1: this level is faster than the chosen one (time ratio for predictions)
                faster = medians[level] / base if key in ("gemm",) or key.startswith("train") \
                    else base / medians[level]
                cell += f" ({faster:.3f}×)"
            cells.append(cell)
        unit = units.get(key, "samples/s")
        print(f"| {key} ({unit}) | " + " | ".join(cells) + " |")
    print(f"\nIn parentheses: speed relative to {chosen} (above 1: faster than the dispatch's choice).")


if __name__ == "__main__":
    main()
