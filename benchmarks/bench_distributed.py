"""Data-parallel scaling: throughput with 1 and N ranks, allreduce and compute time per step,
and a model of scaling to many machines. Run once per rank count:

    python benchmarks/bench_distributed.py                      # 1 rank (+ wide-net compute)
    mpirun -n 2 python benchmarks/bench_distributed.py          # 2 ranks (add --allow-run-as-root
                                                                # and --oversubscribe as needed)
    python benchmarks/bench_distributed.py --estimate a.json b.json   # the 8–64 machine model

Each run prints a JSON line (rank 0) and, with --json FILE, writes it. Threads per rank default
to 1 (CHAINRULE_NUM_THREADS) so that N ranks use N cores.
"""

import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("CHAINRULE_NUM_THREADS", "1")

import numpy as np  # noqa: E402

MNIST_NET = [784, 128, 10]
WIDE_NET = [4096, 4096, 4096, 10]


def n_params(sizes):
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def make_model(sizes, seed=0):
    import chainrule as cr
    layers = [cr.Dense(a, b, activation="relu") for a, b in zip(sizes[:-2], sizes[1:-1])]
    layers.append(cr.Dense(sizes[-2], sizes[-1]))
    return cr.Sequential(layers, optimizer=cr.optimizers.SGD(lr=0.05, momentum=0.9), seed=seed)


def allreduce_seconds(comm, MPI, count, reps):
    buf = np.ones(count, dtype=np.float32)
    comm.Barrier()
    times = []
    for _ in range(reps):
        comm.Barrier()
        t = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        times.append(time.perf_counter() - t)
    return float(comm.allreduce(float(np.median(times)), op=MPI.MAX))


def measure(args):
    from chainrule import distributed
    comm = distributed.get_comm()
    MPI = distributed._mpi()
    rank, size = comm.Get_rank(), comm.Get_size()
    rng = np.random.default_rng(0)
    n = args.samples
    X = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n)
    out = {"ranks": size, "threads_per_rank": int(os.environ["CHAINRULE_NUM_THREADS"]),
           "mnist_net": MNIST_NET, "mnist_params": n_params(MNIST_NET), "throughput": {}}
    for batch in args.batch:
        model = make_model(MNIST_NET)
        trainer = distributed.DistributedTrainer(model, comm)
        trainer.fit(X, y, epochs=1, batch_size=batch, verbose=0)  # warm-up
        best = None
        for _ in range(args.repeats):
            comm.Barrier()
            t = time.perf_counter()
            trainer.fit(X, y, epochs=1, batch_size=batch, verbose=0)
            took = comm.allreduce(time.perf_counter() - t, op=MPI.MAX)
            timing = {k: comm.allreduce(v, op=MPI.MAX) / trainer.timings["steps"]
                      for k, v in trainer.timings.items() if k != "steps"}
            if best is None or took < best[0]:
                best = (took, timing)
        out["throughput"][str(batch)] = {"samples_per_s": n / best[0],
                                         "step_ms": {k: 1e3 * v for k, v in best[1].items()}}
    out["allreduce_ms"] = {
        "mnist": 1e3 * allreduce_seconds(comm, MPI, n_params(MNIST_NET), 50),
        "wide": 1e3 * allreduce_seconds(comm, MPI, n_params(WIDE_NET), 5),
        "8_bytes": 1e3 * allreduce_seconds(comm, MPI, 2, 200),
    }
    if size == 1 and args.wide:
        # compute (forward + backward + gradient) per sample of the wide net, one rank
        model = make_model(WIDE_NET)
        net = model._net
        Xw = rng.random((args.wide_batch, 4096), dtype=np.float32)
        yw = model._targets(rng.integers(0, 10, args.wide_batch), args.wide_batch)
        net.accumulate_gradients(Xw, yw, 1.0, True, False)
        times = []
        for _ in range(3):
            t = time.perf_counter()
            net.zero_grad()
            net.accumulate_gradients(Xw, yw, 1.0 / len(Xw), True, False)
            times.append(time.perf_counter() - t)
        t = time.perf_counter()
        net.apply_gradients(0.01)
        update = time.perf_counter() - t
        out["wide_compute_ms_per_sample"] = 1e3 * min(times) / args.wide_batch
        out["wide_update_ms"] = 1e3 * update
        out["wide_params"] = n_params(WIDE_NET)
    if rank == 0:
        print(json.dumps(out))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(out, f, indent=1)


def ring_allreduce_s(nbytes, machines, bandwidth, latency):
    """Bandwidth-optimal ring allreduce: 2(P−1) messages of S/P bytes each way."""
    if machines == 1:
        return 0.0
    return 2 * (machines - 1) * (latency + nbytes / machines / bandwidth)


def estimate(files, batch, bandwidth_gbit, latency_us):
    runs = [json.load(open(f)) for f in files]
    one = next(r for r in runs if r["ranks"] == 1)
    bw, lat = bandwidth_gbit * 1e9 / 8, latency_us * 1e-6
    tp = one["throughput"][str(batch)]["step_ms"]
    # per-sample compute (gradient) and the per-step update, from the 1-rank run
    nets = {"mnist": (one["mnist_params"], tp["compute"] / 1e3 / batch, tp["update"] / 1e3)}
    if "wide_compute_ms_per_sample" in one:
        nets["wide"] = (one["wide_params"], one["wide_compute_ms_per_sample"] / 1e3,
                        one["wide_update_ms"] / 1e3)
    print(f"model: step(P) = compute_per_sample·B/P + update + ring allreduce "
          f"(2(P−1)(α + 4·n_params/(P·β))), β = {bandwidth_gbit} Gbit/s, α = {latency_us} µs, "
          f"global batch B = {batch}")
    for name, (params, per_sample, update) in nets.items():
        base = per_sample * batch + update
        print(f"\n{name}: {params:,} parameters, {4 * params / 1e6:.1f} MB of gradients; "
              f"1 machine: {1e3 * base:.2f} ms/step")
        print(f"{'machines':>9} {'compute ms':>11} {'allreduce ms':>13} {'speed-up':>9} "
              f"{'efficiency':>11}")
        for P in (1, 2, 8, 16, 32, 64):
            comp = per_sample * batch / P + update
            comm = ring_allreduce_s(4 * params, P, bw, lat)
            speedup = base / (comp + comm)
            print(f"{P:>9} {1e3 * comp:>11.2f} {1e3 * comm:>13.2f} {speedup:>9.2f} "
                  f"{speedup / P:>11.0%}")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=16384)
    parser.add_argument("--batch", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--wide", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--wide-batch", type=int, default=64)
    parser.add_argument("--json")
    parser.add_argument("--estimate", nargs="+", metavar="JSON")
    parser.add_argument("--estimate-batch", type=int, default=1024)
    parser.add_argument("--bandwidth-gbit", type=float, default=10.0)
    parser.add_argument("--latency-us", type=float, default=50.0)
    args = parser.parse_args()
    if args.estimate:
        estimate(args.estimate, args.estimate_batch, args.bandwidth_gbit, args.latency_us)
    else:
        measure(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
