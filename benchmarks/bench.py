"""Side-by-side training and inference speed: chainrule vs PyTorch (CPU) vs scikit-learn.

All three train the same dense nets (ReLU hidden layers, softmax + cross-entropy output,
SGD with momentum 0.9, no weight decay) on the same random float data, in this one process;
a second table trains with Adam, the default of scikit-learn's MLPClassifier and of many
tutorials.
Every point is measured --repeats times, the libraries taking turns, and the median is
reported. The script also measures the machine's single-thread float32 GEMM peak (numpy/OpenBLAS,
torch and chainrule's own core, 1024^3, best of several runs, before and after the training rows;
the higher is used) and how much two threads can gain at all (two independent GEMMs at once
against one), and reports every training throughput as GFLOP/s of EXECUTED work and as a
percentage of that peak:

    executed flops per step = 2 * B * (3 * sum(n_i * n_{i+1}) - n_0 * n_1)

(forward, weight gradient and input gradient for every layer except the first, which computes
no input gradient). The nominal 6 * B * sum(n_i * n_{i+1}) figure is printed beside it.

Run (from the repository root, after `pip install ".[bench]"`):

    python benchmarks/bench.py                 # everything, ~2 minutes on 2 cores
    python benchmarks/bench.py --quick         # fewer samples and repeats
    python benchmarks/bench.py --only train    # or: threads, small, inference, sklearn64, adam

OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, if set in the environment, change OpenBLAS's kernels; unset
them for this command only to measure numpy/torch at their best.
"""

import argparse
import os
import statistics
import sys
import time
import warnings

import numpy as np

SIZES_MNIST = [784, 256, 128, 10]
SIZES_SMALL = [64, 32, 10]
LR = 0.01
MOMENTUM = 0.9
ADAM_LR = 0.001  # Adam's default everywhere; betas (0.9, 0.999), eps 1e-8 are the defaults too


def executed_flops(sizes, batch):
    pairs = sum(a * b for a, b in zip(sizes, sizes[1:]))
    return 2 * batch * (3 * pairs - sizes[0] * sizes[1])


def nominal_flops(sizes, batch):
    return 6 * batch * sum(a * b for a, b in zip(sizes, sizes[1:]))


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


# ----- GEMM peak -------------------------------------------------------------------------------
def gemm_peak(repeats):
    """Best single-thread float32 GEMM GFLOP/s, n = 1024, over numpy (its BLAS), torch and
    chainrule's own core (the kernels its training runs)."""
    from threadpoolctl import threadpool_limits

    n = 1024
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), np.float32)
    results = {}
    with threadpool_limits(1):
        np.matmul(a, b, out=c)
        best = min(median_time(lambda: np.matmul(a, b, out=c), 1)[0] for _ in range(repeats * 2))
        results["numpy"] = 2 * n**3 / best / 1e9
    import chainrule as cr

    before = cr.get_num_threads()
    cr.set_num_threads(1)
    cr._core.matmul(a, b, c)
    best = min(median_time(lambda: cr._core.matmul(a, b, c), 1)[0] for _ in range(repeats * 2))
    results["chainrule"] = 2 * n**3 / best / 1e9
    cr.set_num_threads(before)
    try:
        import torch

        torch.set_num_threads(1)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        tc = torch.empty(n, n)
        torch.mm(ta, tb, out=tc)
        best = min(median_time(lambda: torch.mm(ta, tb, out=tc), 1)[0]
                   for _ in range(repeats * 2))
        results["torch"] = 2 * n**3 / best / 1e9
    except ImportError:
        pass
    return max(results.values()), results


def two_core_gemm_scaling(repeats, n=512, calls=20):
    """How much two threads can gain on this machine at all: the combined GFLOP/s of two
    independent single-threaded GEMMs running at once (two Python threads; the core releases the
    GIL), over one alone. Two vCPUs that share one physical core's vector units give about 1x."""
    import threading

    import chainrule as cr

    before = cr.get_num_threads()
    cr.set_num_threads(1)
    rng = np.random.default_rng(0)
    pairs = [(rng.standard_normal((n, n), dtype=np.float32),
              rng.standard_normal((n, n), dtype=np.float32),
              np.empty((n, n), np.float32)) for _ in range(2)]

    def work(i):
        a, b, c = pairs[i]
        for _ in range(calls):
            cr._core.matmul(a, b, c)

    def one():
        work(0)

    def two():
        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    one()
    ratios = []
    for _ in range(repeats):
        t1 = median_time(one, 1)[0]
        t2 = median_time(two, 1)[0]
        ratios.append(2 * t1 / t2)
    cr.set_num_threads(before)
    return statistics.median(ratios)


# ----- the three trainers ----------------------------------------------------------------------
def chainrule_trainer(sizes, dtype, batch, threads, optimizer):
    import chainrule as cr

    cr.set_num_threads(threads)
    layers = [cr.Dense(a, b) for a, b in zip(sizes, sizes[1:])]
    opt = (cr.optimizers.Adam(lr=ADAM_LR) if optimizer == "adam"
           else cr.optimizers.SGD(lr=LR, momentum=MOMENTUM))
    model = cr.Sequential(layers, loss="cross_entropy", dtype=dtype, seed=0, optimizer=opt)

    def run(X, y):
        model.fit(X, y, epochs=1, batch_size=batch, verbose=0)
    return run


def torch_trainer(sizes, dtype, batch, threads, optimizer):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    tdtype = torch.float32 if dtype == "float32" else torch.float64
    mods = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        mods.append(torch.nn.Linear(a, b, dtype=tdtype))
        if i < len(sizes) - 2:
            mods.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*mods)
    opt = (torch.optim.Adam(net.parameters(), lr=ADAM_LR) if optimizer == "adam"
           else torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM))
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)

    def run(X, y):
        tx, ty = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
        order = torch.randperm(tx.shape[0], generator=gen)
        for start in range(0, tx.shape[0], batch):
            idx = order[start:start + batch]
            xb, yb = tx[idx], ty[idx]
            opt.zero_grad(set_to_none=False)
            loss = loss_fn(net(xb), yb)
            loss.backward()
            opt.step()
    return run


def sklearn_trainer(sizes, dtype, batch, threads, optimizer):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    def run(X, y):
        clf = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), activation="relu",
                            solver=optimizer, alpha=0.0, batch_size=batch,
                            learning_rate_init=ADAM_LR if optimizer == "adam" else LR,
                            momentum=MOMENTUM, nesterovs_momentum=False, max_iter=1,
                            shuffle=True, random_state=0, tol=0.0)
        with warnings.catch_warnings(), threadpool_limits(threads):
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)
    return run


TRAINERS = {"chainrule": chainrule_trainer, "torch": torch_trainer, "sklearn": sklearn_trainer}


def measure_training(libs, sizes, dtype, batch, threads, X, y, repeats, optimizer="sgd"):
    """{lib: samples/s}, the median of `repeats` epochs each. The libraries take turns, one
    epoch each per round, so that a slow spell of a noisy machine hits all of them alike."""
    runs = {lib: TRAINERS[lib](sizes, dtype, batch, threads, optimizer) for lib in libs}
    warm = max(batch * 4, 512)
    for run in runs.values():
        run(X[:warm], y[:warm])  # warm-up (allocations, caches)
    times = {lib: [] for lib in runs}
    for _ in range(repeats):
        for lib, run in runs.items():
            time.sleep(0.05)  # let the previous library's idle threads stop spinning
            t = time.perf_counter()
            run(X, y)
            times[lib].append(time.perf_counter() - t)
    return {lib: X.shape[0] / statistics.median(t) for lib, t in times.items()}


# ----- inference -------------------------------------------------------------------------------
def measure_inference(sizes, batch, threads, repeats, calls):
    import chainrule as cr
    import torch

    cr.set_num_threads(threads)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(1)
    x = rng.random((batch, sizes[0]), dtype=np.float32)
    model = cr.Sequential([cr.Dense(a, b) for a, b in zip(sizes, sizes[1:])], seed=0)
    mods = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        mods.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            mods.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*mods, torch.nn.Softmax(dim=1)).eval()
    tx = torch.from_numpy(x)

    def cr_calls():
        for _ in range(calls):
            model.predict_proba(x)

    def torch_calls():
        with torch.no_grad():
            for _ in range(calls):
                net(tx)

    fns = {"chainrule": cr_calls, "torch": torch_calls}
    for fn in fns.values():
        fn()  # warm-up
    times = {name: [] for name in fns}
    for _ in range(repeats):  # taking turns, like the training points
        for name, fn in fns.items():
            times[name].append(median_time(fn, 1)[0])
    return {name: statistics.median(t) / calls for name, t in times.items()}


# ----- the table -------------------------------------------------------------------------------
def fmt_row(cells, widths):
    return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"


def print_table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    print(fmt_row(header, widths))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(fmt_row(r, widths))
    print()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=30000,
                   help="samples trained per measurement (rows of the 60000x784 data)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="10000 samples, 3 repeats")
    p.add_argument("--only", default="train,threads,small,inference,sklearn64,adam",
                   help="comma-separated sections")
    p.add_argument("--libs", default="chainrule,torch,sklearn")
    args = p.parse_args()
    if args.quick:
        args.samples, args.repeats = 10000, 3
    sections = set(args.only.split(","))
    libs = [lib for lib in args.libs.split(",") if lib]

    # torch before chainrule: each loads its own OpenMP runtime, which reads OMP_WAIT_POLICY and
    # GOMP_SPINCOUNT once, as it loads, and `import chainrule` sets defaults for them. Imported
    # first, torch runs with its own defaults, as its users have it.
    torch = None
    if "torch" in libs:
        try:
            import torch
        except ImportError:
            libs = [lib for lib in libs if lib != "torch"]
    import chainrule as cr
    import chainrule._core as core

    print(f"chainrule {cr.__version__} ({getattr(core, 'ISA', 'baseline')} kernels), "
          f"python {sys.version.split()[0]}, numpy {np.__version__}", end="")
    if torch is not None:
        print(f", torch {torch.__version__}", end="")
    try:
        import sklearn
        print(f", scikit-learn {sklearn.__version__}", end="")
    except ImportError:
        libs = [lib for lib in libs if lib != "sklearn"]
    print(f"; {os.cpu_count()} CPUs; {args.samples} samples x {args.repeats} repeats per point")

    # The peak is measured before and after the training rows, and the higher one is used: on a
    # shared machine the speed drifts over a run, and a peak taken in a slow spell would
    # inflate every "% peak".
    def report_peak(when):
        peak, peaks = gemm_peak(args.repeats)
        print(f"single-thread float32 GEMM peak (1024^3), {when}: "
              + ", ".join(f"{k} {v:.1f}" for k, v in peaks.items()) + f" GFLOP/s -> {peak:.1f}")
        return peak

    peak = report_peak("before")

    rng = np.random.default_rng(0)
    X60 = rng.random((60000, 784), dtype=np.float32)
    y60 = rng.integers(0, 10, 60000).astype(np.int32)
    X = X60[: args.samples]
    y = y60[: args.samples]

    header = ["net", "dtype", "batch", "thr", "library", "samples/s", "GFLOP/s exec (nominal)",
              "% peak", "vs torch", "vs sklearn"]

    def training_rows(points, dtype="float32", Xd=X, yd=y, optimizer="sgd"):
        rows = []
        for sizes, batch, threads, point_libs in points:
            Xp = Xd[:, : sizes[0]].copy() if sizes[0] != 784 else Xd
            res = measure_training([lib for lib in point_libs if lib in libs], sizes, dtype,
                                   batch, threads, Xp, yd, args.repeats, optimizer)
            for lib, sps in res.items():
                ex = executed_flops(sizes, 1) * sps / 1e9
                nom = nominal_flops(sizes, 1) * sps / 1e9
                vt = f"{sps / res['torch']:.2f}x" if "torch" in res and lib != "torch" else ""
                vs = f"{sps / res['sklearn']:.2f}x" if "sklearn" in res and lib != "sklearn" else ""
                rows.append(["-".join(map(str, sizes)), dtype, batch, threads, lib,
                             f"{sps:,.0f}", f"{ex:.1f} ({nom:.1f})", ex, vt, vs])
            sys.stdout.flush()
        return rows

    rows = []
    if "train" in sections:
        rows += training_rows([(SIZES_MNIST, b, 1, libs) for b in (32, 128, 1024)])
    if "threads" in sections:
        rows += training_rows([(SIZES_MNIST, b, t, ["chainrule", "torch"])
                               for b in (256, 1024) for t in (1, 2)])
    if "small" in sections:
        rows += training_rows([(SIZES_SMALL, 32, 1, ["chainrule", "torch"])])
    if "sklearn64" in sections:
        X64, y64 = X.astype(np.float64), y
        rows += training_rows([(SIZES_MNIST, b, 1, ["chainrule", "sklearn"])
                               for b in (32, 128, 1024)], "float64", X64, y64)
    adam_rows = []
    if "adam" in sections:
        adam_rows = training_rows([(SIZES_MNIST, b, 1, libs) for b in (32, 128)],
                                  optimizer="adam")
    if "threads" in sections and (os.cpu_count() or 1) >= 2:
        ceiling = two_core_gemm_scaling(args.repeats)
        print("two independent single-threaded float32 GEMMs (512^3) at once run "
              f"{ceiling:.2f}x as fast as one: the most 2 threads can gain here\n")
    if rows or adam_rows:
        peak = max(peak, report_peak("after"))
        print(f"peak used for % peak: {peak:.1f} GFLOP/s\n")
        for r in rows + adam_rows:
            r[7] = f"{100 * r[7] / peak:.0f}%"
    if rows:
        print("Training, SGD momentum 0.9, cross-entropy (median of repeats):\n")
        print_table(header, rows)
        if "threads" in sections:
            for b in (256, 1024):
                one = [r for r in rows if r[2] == b and r[3] == 1 and r[4] == "chainrule"]
                two = [r for r in rows if r[2] == b and r[3] == 2 and r[4] == "chainrule"]
                if one and two:
                    s1 = float(one[0][5].replace(",", ""))
                    s2 = float(two[0][5].replace(",", ""))
                    print(f"chainrule 2-thread speed-up at batch {b}: {s2 / s1:.2f}x")
            print()
    if adam_rows:
        print(f"Training, Adam (lr {ADAM_LR}, betas 0.9, 0.999; scikit-learn's solver='adam'), "
              "cross-entropy (median of repeats):\n")
        print_table(header, adam_rows)
        print()

    if "inference" in sections and "torch" in libs:
        inf_rows = []
        for batch, calls in ((1, 2000), (1024, 20)):
            r = measure_inference(SIZES_MNIST, batch, 1, args.repeats * 2 + 1, calls)
            inf_rows.append(["784-256-128-10", batch, f"{r['chainrule'] * 1e6:.1f}",
                             f"{r['torch'] * 1e6:.1f}", f"{r['torch'] / r['chainrule']:.2f}x"])
        print("Inference (predict_proba vs torch eager under no_grad, 1 thread, per call):\n")
        print_table(["net", "batch", "chainrule us", "torch us", "speed-up"], inf_rows)


if __name__ == "__main__":
    main()
