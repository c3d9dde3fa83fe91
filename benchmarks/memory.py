"""Peak memory while training on MNIST, in a process that imports only chainrule and numpy.

Loads MNIST (train and test, float32) with chainrule.datasets.load_mnist, trains
784-256-128-10 for --epochs epochs and evaluates on the test set, then prints the peak resident
set size (VmHWM, else getrusage's ru_maxrss) against the data's own size (X and y of both
splits). The target is peak RSS <= data size + 100 MB. The interpreter, numpy and chainrule themselves are
part of the peak (they are printed too, as measured right after import).

    python benchmarks/memory.py --data /path/to/mnist [--epochs 1] [--batch-size 128]
"""

import argparse
import resource
import sys

MB = 1 << 20


def rss_peak_bytes():
    """This process's peak RSS: VmHWM where /proc has it, since ru_maxrss survives exec and so
    counts a parent's memory when the script is started from a large process (a test run)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # KiB on Linux


def current_rss_bytes():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except OSError:
        return float("nan")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="directory with the MNIST IDX files")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    import numpy as np

    import chainrule as cr

    assert "torch" not in sys.modules
    after_import = current_rss_bytes()
    cr.set_num_threads(args.threads)
    (X, y), (Xt, yt) = cr.datasets.load_mnist(args.data, download=False)
    data = X.nbytes + y.nbytes + Xt.nbytes + yt.nbytes
    model = cr.Sequential([cr.Dense(784, 256), cr.Dense(256, 128), cr.Dense(128, 10)], seed=0,
                          optimizer=cr.optimizers.SGD(lr=0.05, momentum=0.9))
    model.fit(X, y, epochs=args.epochs, batch_size=args.batch_size, verbose=0)
    accuracy = model.evaluate(Xt, yt)["accuracy"]
    peak = rss_peak_bytes()
    print(f"chainrule {cr.__version__} ({cr._core.ISA}), numpy {np.__version__}; "
          f"{args.epochs} epoch(s), batch {args.batch_size}, test accuracy {accuracy:.4f}")
    print(f"RSS after importing chainrule and numpy: {after_import / MB:.0f} MiB")
    print(f"data (X, y of train and test): {data / MB:.0f} MiB")
    print(f"peak RSS: {peak / MB:.0f} MiB = data + {(peak - data) / MB:.0f} MiB "
          f"(target: data + 100 MiB or less)")


if __name__ == "__main__":
    main()
