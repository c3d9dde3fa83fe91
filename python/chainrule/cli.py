"""Command line: `chainrule train` trains a network on a dataset and reports test accuracy."""

import argparse
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
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


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
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    train.add_argument("--threads", type=_positive(int), default=None)
    train.add_argument("--save", metavar="FILE", help="write the trained model to FILE")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def train(args):
    from . import Dense, Sequential, datasets, set_num_threads

    if args.threads:
        set_num_threads(args.threads)
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
    print(f"{args.dataset}: {X.shape[0]} training and {Xt.shape[0]} test samples; network "
          f"{'-'.join(map(str, sizes))} ({model.n_params:,} parameters), {args.optimizer} "
          f"lr={lr}, batch {args.batch_size}, {epochs} epochs, {args.dtype}")
    start = time.perf_counter()
    model.fit(X, y, epochs=epochs, batch_size=args.batch_size, lr=lr,
              verbose=0 if args.quiet else 1)
    took = time.perf_counter() - start
    result = model.evaluate(Xt, yt)
    print(f"test accuracy: {result['accuracy']:.4f}  test loss: {result['loss']:.4f}  "
          f"training time: {took:.2f}s")
    if args.save:
        model.save(args.save)
        print(f"saved to {args.save}")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return train(args)
    except (OSError, ValueError) as e:
        print(f"chainrule: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
