"""Command line: `chainrule train` trains a network on a dataset and reports test accuracy;
`chainrule plot MODEL` draws a saved model (training curves, weights, network diagram)."""

import argparse
import os
import sys
import time


from . import _core

DEFAULT_EPOCHS = {"digits": 30, "mnist": 5, "fashion-mnist": 10}


def _hidden_sizes(text):
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hidden takes sizes like 128,64, got {text!r}")
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError("hidden layer sizes must be positive")
    return sizes


def _positive(kind):
    def parse(text):
        value = kind(text)
        if not 0 < value < float("inf"):  # also refuses nan
            raise argparse.ArgumentTypeError(f"must be positive and finite, got {text}")
        return value
    return parse


def _non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(prog="chainrule", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a dense network and report test accuracy")
    train.add_argument("--dataset", choices=["digits", "mnist", "fashion-mnist"],
                       default="digits", help="digits ships with chainrule (default)")
    train.add_argument("--data-dir", help="directory with the IDX files (mnist, fashion-mnist); "
                       "without it they are read from, or downloaded into, the cache")
    train.add_argument("--hidden", type=_hidden_sizes, default=None,
                       help="hidden layer sizes, e.g. 128,64 (default: 64 for digits, 128 else)")
    train.add_argument("--activation", default="relu",
                       choices=[a for a in _core.ACTIVATIONS if a != "softmax"])
    train.add_argument("--optimizer", default="sgd", choices=list(_core.OPTIMIZERS))
    train.add_argument("--epochs", type=_positive(int), default=None)
    train.add_argument("--batch-size", type=_positive(int), default=32)
    train.add_argument("--lr", type=_positive(float), default=None,
                       help="learning rate (default 0.1 for sgd, 0.001 otherwise)")
    train.add_argument("--seed", type=_non_negative_int, default=0)
    train.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    train.add_argument("--threads", type=_positive(int), default=None)
    train.add_argument("--save", metavar="FILE", help="write the trained model to FILE")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--distributed", action="store_true",
                       help="data-parallel over MPI: launch under mpirun -n N; rank 0 prints "
                       "and writes files (needs mpi4py: pip install chainrule[mpi])")
    train.add_argument("--plot", metavar="PNG", help="draw the training curves (train vs test "
                       "as validation), first-layer weights and network to PNG; needs "
                       "matplotlib (pip install chainrule[plot])")
    plot = commands.add_parser("plot", help="draw a saved model: training curves, first-layer "
                               "weights, network diagram (needs matplotlib)")
    plot.add_argument("model", help="a model file written by --save or model.save")
    plot.add_argument("-o", "--output", metavar="PNG",
                      help="image to write (default: the model file's name with .png)")
    plot.add_argument("--kind", choices=["summary", "history", "weights", "network"],
                      default="summary", help="what to draw (default: all of it)")
    plot.add_argument("--dpi", type=_positive(int), default=100)
    return parser


def train(args):
    from . import Dense, Sequential, datasets, set_num_threads

    if args.plot:
        from .plots import require_matplotlib
        require_matplotlib()  # fail before training, not after
    for path in (args.save, args.plot):  # likewise: a missing directory
        folder = os.path.dirname(os.path.abspath(path)) if path else None
        if folder and not os.path.isdir(folder):
            raise FileNotFoundError(f"no such directory for {path}: {folder}")
    if args.threads:
        set_num_threads(args.threads)
    fit, rank, ranks = Sequential.fit, 0, ""
    if args.distributed:
        from . import distributed
        comm = distributed.get_comm()
        rank, ranks = comm.Get_rank(), f", {comm.Get_size()} ranks"
        def fit(model, X, y, **kwargs):
            return distributed.fit(model, X, y, comm=comm, **kwargs)
    (X, y), (Xt, yt) = datasets.load(args.dataset, args.data_dir)
    hidden = args.hidden if args.hidden is not None else ([64] if args.dataset == "digits"
                                                          else [128])
    sizes = [X.shape[1], *hidden, int(max(y.max(), yt.max())) + 1]
    layers = [Dense(n_in, n_out, activation=args.activation)
              for n_in, n_out in zip(sizes[:-2], sizes[1:-1])]
    layers.append(Dense(sizes[-2], sizes[-1]))
    lr = args.lr if args.lr is not None else (0.1 if args.optimizer == "sgd" else 0.001)
    model = Sequential(layers, loss="cross_entropy", optimizer=args.optimizer,
                       dtype=args.dtype, seed=args.seed)
    epochs = args.epochs or DEFAULT_EPOCHS[args.dataset]
    if rank == 0:
        print(f"{args.dataset}: {X.shape[0]} training and {Xt.shape[0]} test samples; network "
              f"{'-'.join(map(str, sizes))} ({model.n_params:,} parameters), {args.optimizer} "
              f"lr={lr}, batch {args.batch_size}, {epochs} epochs, {args.dtype}{ranks}")
    start = time.perf_counter()
    fit(model, X, y, epochs=epochs, batch_size=args.batch_size, lr=lr,
        verbose=0 if args.quiet else 1,
        **({"validation_data": (Xt, yt)} if args.plot else {}))
    took = time.perf_counter() - start
    if rank != 0:  # under --distributed only rank 0 reports and writes files
        return 0
    result = model.evaluate(Xt, yt)
    print(f"test accuracy: {result['accuracy']:.4f}  test loss: {result['loss']:.4f}  "
          f"training time: {took:.2f}s")
    if args.save:
        model.save(args.save)
        print(f"saved to {args.save}")
    if args.plot:
        from .plots import plot_model
        plot_model(model, path=args.plot)
        print(f"plotted to {args.plot}")
    return 0


def plot(args):
    from . import load, plots

    plots.require_matplotlib()
    model = load(args.model)
    out = args.output or os.path.splitext(args.model)[0] + ".png"
    if args.kind == "summary":
        plots.plot_model(model, path=out, dpi=args.dpi)
    elif args.kind == "history":
        plots.plot_history(model, path=out, dpi=args.dpi)
    elif args.kind == "weights":
        plots.plot_weights(model, path=out, dpi=args.dpi)
    else:
        plots.plot_network(model, path=out, dpi=args.dpi)
    print(f"plotted {args.model} to {out}")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return plot(args) if args.command == "plot" else train(args)
    except (OSError, ValueError, ImportError, FloatingPointError) as e:
        print(f"chainrule: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
