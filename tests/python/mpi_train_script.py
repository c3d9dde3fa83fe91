"""Helper for test_distributed.py: trains a small seeded problem and writes rank 0's result.

    python mpi_train_script.py OUT.npz [--reference] [--dtype float64] [--dropout 0.2] ...
    mpirun -n 2 python mpi_train_script.py OUT.npz [--sharded]

--reference trains with Sequential.fit in this one process (no MPI at all); otherwise
chainrule.distributed.fit runs on every rank of COMM_WORLD. With --lr large enough to diverge,
the result also says how training ended (FloatingPointError, or a RuntimeWarning with
--on-divergence warn) and with which message.
"""

import argparse
import os
import sys
import warnings

os.environ.setdefault("CHAINRULE_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import chainrule as cr  # noqa: E402


def problem(n, n_in, n_classes):
    rng = np.random.default_rng(1234)
    centers = rng.normal(size=(n_classes, n_in)) * 2
    y = rng.integers(0, n_classes, size=n)
    X = centers[y] + rng.normal(size=(n, n_in))
    return X, y


def build(args):
    layers = [cr.Dense(12, 16, activation="tanh")]
    if args.dropout:
        layers.append(cr.Dropout(args.dropout))
    layers += [cr.Dense(16, 16, activation="relu"), cr.Dense(16, 3)]
    optimizer = (cr.optimizers.Adam(lr=args.lr or 0.01) if args.optimizer == "adam"
                 else cr.optimizers.SGD(lr=args.lr or 0.05, momentum=0.9))
    return cr.Sequential(layers, loss="cross_entropy", optimizer=optimizer, dtype=args.dtype,
                         seed=7)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--reference", action="store_true")
    parser.add_argument("--sharded", action="store_true")
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--optimizer", default="sgd")
    parser.add_argument("--n", type=int, default=203)      # 203 = 6·32 + 11: a partial batch
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--l2", type=float, default=1e-4)
    parser.add_argument("--max-grad-norm", type=float, default=5.0)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--on-divergence", default="raise")
    args = parser.parse_args()

    X, y = problem(args.n, 12, 3)
    Xv, yv = problem(50, 12, 3)
    model = build(args)
    kwargs = dict(epochs=args.epochs, batch_size=args.batch_size, verbose=0, l2=args.l2,
                  max_grad_norm=args.max_grad_norm, validation_data=(Xv, yv),
                  on_divergence=args.on_divergence)
    rank = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if args.reference:
                model.fit(X, y, **kwargs)
            else:
                from chainrule import distributed

                comm = distributed.get_comm()
                rank = comm.Get_rank()
                if args.sharded:
                    X, y = distributed.shard(X), distributed.shard(y)
                distributed.fit(model, X, y, data="sharded" if args.sharded else "replicated",
                                **kwargs)
            ending, message = "finished", ""
        except FloatingPointError as e:
            ending, message = "raised", str(e)
    diverged = [str(w.message) for w in caught if "diverged" in str(w.message)]
    if diverged:
        ending, message = "warned", diverged[0]
    if not args.reference:
        # every rank must end with the same weights, the same way
        params = comm.allgather(model._net.params.copy())
        assert all(np.array_equal(params[0], p) for p in params), "replicas diverged"
        endings = comm.allgather((ending, message))
        assert all(e == endings[0] for e in endings), f"ranks ended differently: {endings}"
    if rank == 0:
        h = model.history.history  # empty if training diverged in its first epoch
        logs = {key: np.array(h.get(key, [])) for key in ("loss", "val_loss", "accuracy",
                                                           "val_accuracy")}
        np.savez(args.out, params=model._net.params, rng_state=np.uint64(model._net.rng_state),
                 ending=ending, message=message, **logs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
