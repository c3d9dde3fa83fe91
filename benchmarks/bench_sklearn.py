"""chainrule.sklearn.MLPClassifier vs sklearn.neural_network.MLPClassifier, side by side.

Same data, same parameters (hidden_layer_sizes, solver, learning rate, batch size, epochs,
random_state), in this one process: fit time, test accuracy, and the speed-up. chainrule runs
in float32 (its default) and, with --float64, also in float64 (scikit-learn trains in the
dtype of X; it gets float64 here, its usual input).

Run from the repository root (after `pip install ".[sklearn]"`):

    CHAINRULE_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \\
        python benchmarks/bench_sklearn.py --data-dir /work/shared/data/mnist

Without --data-dir only the 8x8 digits (bundled with scikit-learn) are used. Each fit is
repeated --repeats times and the median time is reported.
"""

import argparse
import statistics
import time
import warnings

import numpy as np
from sklearn import neural_network as sk_nn
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

import chainrule as cr
from chainrule import sklearn as cr_sk


def timed_fit(make, X, y, Xt, yt, repeats):
    times, score = [], None
    for _ in range(repeats):
        est = make()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            start = time.perf_counter()
            est.fit(X, y)
            times.append(time.perf_counter() - start)
        score = est.score(Xt, yt)
    return statistics.median(times), score, est.n_iter_


def run(name, X, y, Xt, yt, params, repeats, float64):
    rows = []
    t_sk, acc_sk, it_sk = timed_fit(lambda: sk_nn.MLPClassifier(**params),
                                    X.astype(np.float64), y, Xt.astype(np.float64), yt, repeats)
    rows.append(("scikit-learn (float64)", t_sk, acc_sk, it_sk))
    dtypes = ["float32"] + (["float64"] if float64 else [])
    for dtype in dtypes:
        t, acc, it = timed_fit(lambda: cr_sk.MLPClassifier(dtype=dtype, **params), X, y, Xt, yt,
                               repeats)
        rows.append((f"chainrule ({dtype})", t, acc, it))
    print(f"\n{name}: {params}")
    print(f"  {'estimator':<24}{'fit s':>9}{'epochs':>8}{'test acc':>10}{'speed-up':>10}")
    for label, t, acc, it in rows:
        print(f"  {label:<24}{t:>9.3f}{it:>8d}{acc:>10.4f}{t_sk / t:>9.1f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="directory with the MNIST IDX files")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10, help="max_iter for MNIST")
    parser.add_argument("--float64", action="store_true", help="also time chainrule float64")
    args = parser.parse_args()
    print(f"chainrule {cr.__version__}, threads={cr.get_num_threads()}")

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X, Xt, y, yt = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    for solver, lr in (("sgd", 0.05), ("adam", 0.001)):
        run("digits (1257 train / 540 test)", X, y, Xt, yt,
            dict(hidden_layer_sizes=(64,), solver=solver, learning_rate_init=lr, max_iter=60,
                 random_state=0), args.repeats, args.float64)

    if args.data_dir:
        (X, y), (Xt, yt) = cr.datasets.load_mnist(args.data_dir)
        for solver, lr in (("sgd", 0.05), ("adam", 0.001)):
            run(f"MNIST (60000 train / 10000 test, {args.epochs} epochs)", X, y, Xt, yt,
                dict(hidden_layer_sizes=(100,), solver=solver, learning_rate_init=lr,
                     max_iter=args.epochs, random_state=0), args.repeats, args.float64)


if __name__ == "__main__":
    main()
