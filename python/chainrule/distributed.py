"""Synchronous data-parallel training over MPI (mpi4py with Open MPI or MPICH).

Launch the same script on every process, e.g. ``mpirun -n 4 python train.py``::

    import chainrule as cr
    from chainrule import distributed

    model = cr.Sequential([...], seed=0)           # same seed on every rank (rank 0's weights win)
    (X, y), _ = cr.datasets.load_mnist("mnist")      # every rank holds the whole array ...
    distributed.fit(model, X, y, epochs=5, batch_size=256, lr=0.1)

    # ... or each rank reads only its own rows of the IDX files:
    X, y = distributed.load_idx_shard("mnist/train-images-idx3-ubyte.gz",
                                      "mnist/train-labels-idx1-ubyte.gz")
    distributed.fit(model, X, y, epochs=5, batch_size=256, lr=0.1, data="sharded")

Every rank holds a replica of the model. Rank 0's parameters, optimizer state and random
generators are broadcast at the start of fit. For each global batch of B samples, rank r
computes the gradient of its contiguous share of the batch with scale 1/B (1/B_last for the
last, partial batch), so that one in-place ``MPI_Allreduce(SUM)`` of the single flat gradient
buffer gives the gradient of the global mean cost on every rank; every rank then applies the
same update (``Network.apply_gradients``: coupled L2, norm check, clipping, optimizer step).

With ``data="replicated"`` (every rank has the whole X) the epoch's permutation is the one
``Sequential.fit`` would draw, so the result equals a single-process ``fit`` with the same batch
size up to floating-point summation order; with ``data="sharded"`` each rank trains on its own
rows (see :func:`fit`). Only rank 0 runs callbacks (progress bar, CSV logs, ...) and should write
files; the epoch's loss and accuracy in the history are global (summed across ranks).
Details, tolerances and scaling measurements: docs/distributed.md.
"""

import math
import os
import time
import warnings

import numpy as np

__all__ = ["DistributedTrainer", "fit", "get_comm", "idx_shape", "load_idx_shard",
           "read_idx_rows", "shard", "shard_range"]

_INSTALL_HINT = (
    "chainrule.distributed needs mpi4py and an MPI library. Install them with\n"
    "    apt-get install libopenmpi-dev openmpi-bin     # or MPICH: libmpich-dev mpich\n"
    "    pip install 'chainrule[mpi]'                   # = pip install mpi4py\n"
    "then launch with e.g. mpirun -n 4 python train.py")

# SplitMix64 adds this constant to its state per draw; adding k·GAMMA jumps k draws ahead.
_GAMMA = 0x9E3779B97F4A7C15
_RANK_STREAM_JUMP = 1 << 48  # dropout draws reserved per rank before its stream meets the next
_CHUNK_SECONDS = 0.05        # how often rank 0 updates the progress callbacks


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return MPI


def get_comm(comm=None):
    """``comm``, or MPI.COMM_WORLD; raises ImportError with install instructions without mpi4py."""
    MPI = _mpi()
    return MPI.COMM_WORLD if comm is None else comm


# ----- sharding ------------------------------------------------------------------------------
def shard_range(n, rank, size):
    """(start, stop) of rank's contiguous share of n items: sizes differ by at most one, and the
    shares of ranks 0..size-1 tile [0, n) in order."""
    if size < 1 or not 0 <= rank < size:
        raise ValueError(f"rank {rank} is not in a group of {size}")
    return n * rank // size, n * (rank + 1) // size


def shard(array, comm=None, rank=None, size=None):
    """This rank's contiguous rows of an in-memory array (a view, no copy): rows
    shard_range(len(array), rank, size). rank/size default to those of comm (COMM_WORLD)."""
    if rank is None or size is None:
        comm = get_comm(comm)
        rank, size = comm.Get_rank(), comm.Get_size()
    start, stop = shard_range(len(array), rank, size)
    return array[start:stop]


def _open_idx(path):
    from .datasets._idx import _GZIP_MAGIC
    f = open(path, "rb")
    if f.read(2) == _GZIP_MAGIC:
        import gzip
        f.close()
        return gzip.open(path, "rb")
    f.seek(0)
    return f


def _read_header(f, what):
    from .datasets._idx import _IDX_DTYPES
    head = f.read(4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_DTYPES:
        raise ValueError(f"{what}: bad IDX magic number 0x{head.hex()}")
    ndim = head[3]
    dims = f.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise ValueError(f"{what}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4"))
    return _IDX_DTYPES[head[2]], shape, 4 + 4 * ndim


def idx_shape(path):
    """The shape stored in an IDX file's header (raw or gzip), reading only the header."""
    with _open_idx(path) as f:
        return _read_header(f, os.fsdecode(path))[1]


def read_idx_rows(path, start, stop):
    """Rows [start, stop) along the first axis of an IDX file, without reading the rest.

    A raw file is read with one seek to header + start·row_bytes and one read. A gzip file
    cannot be seeked into: it is decompressed as a stream up to row ``stop`` (the rows before
    ``start`` are decompressed and discarded, never held in memory; nothing after ``stop`` is
    read). Checksums are not verified (they cover whole files); use load_mnist for that.
    Returns a native-byte-order array of shape (stop - start, *shape[1:]).
    """
    what = os.fsdecode(path)
    with _open_idx(path) as f:
        dtype, shape, header = _read_header(f, what)
        if not shape:
            raise ValueError(f"{what}: a 0-dimensional IDX file has no rows")
        start, stop = int(start), int(stop)
        if not 0 <= start <= stop <= shape[0]:
            raise ValueError(f"{what}: rows [{start}, {stop}) are outside [0, {shape[0]})")
        row_bytes = dtype.itemsize * math.prod(shape[1:])
        f.seek(header + start * row_bytes)
        data = f.read((stop - start) * row_bytes)
    if len(data) != (stop - start) * row_bytes:
        raise ValueError(f"{what}: truncated IDX data (rows [{start}, {stop}) need "
                         f"{(stop - start) * row_bytes} bytes, got {len(data)})")
    arr = np.frombuffer(data, dtype=dtype).reshape((stop - start, *shape[1:]))
    return arr.astype(dtype.newbyteorder("="))


def load_idx_shard(images, labels, comm=None, rank=None, size=None, *, dtype=np.float32,
                   flatten=True, scale=255.0):
    """This rank's contiguous share of an image/label IDX pair (e.g. MNIST's training files),
    reading only those rows: (X scaled to [0, 1] as dtype, y as int64). rank/size default to
    those of comm (COMM_WORLD)."""
    if rank is None or size is None:
        comm = get_comm(comm)
        rank, size = comm.Get_rank(), comm.Get_size()
    n = idx_shape(images)[0]
    if idx_shape(labels)[0] != n:
        raise ValueError(f"{os.fsdecode(images)} and {os.fsdecode(labels)} hold different "
                         f"numbers of rows")
    start, stop = shard_range(n, rank, size)
    X = np.divide(read_idx_rows(images, start, stop), scale, dtype=dtype)
    if flatten:
        X = X.reshape(stop - start, -1)
    return X, read_idx_rows(labels, start, stop).astype(np.int64)


# ----- training ------------------------------------------------------------------------------
def _rank_rng_state(state, rank):
    """Rank r's dropout stream: rank 0's stream jumped r·2⁴⁸ draws ahead (rank 0 keeps it, so a
    1-rank run draws exactly the masks of Sequential.fit)."""
    return (int(state) + rank * _RANK_STREAM_JUMP * _GAMMA) % (1 << 64)


class DistributedTrainer:
    """Trains a Sequential on every rank of an MPI communicator (default COMM_WORLD).

    ``fit`` takes the arguments of ``Sequential.fit`` (no validation_split with sharded data)
    plus ``data``; see :func:`fit`. ``timings`` holds, after fit, the seconds spent computing
    gradients, in the allreduce and in the update, summed over the steps of this rank.
    """

    def __init__(self, model, comm=None):
        self.comm = get_comm(comm)
        self.MPI = _mpi()
        self.model = model
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.timings = {}

    # -- state ----------------------------------------------------------------------------------
    def broadcast_model(self, root=0):
        """Copy root's parameters, optimizer state and random generators to every rank."""
        net, comm = self.model._net, self.comm
        comm.Bcast(net.params, root=root)
        for buffer in net.optimizer_state():
            if buffer.size:
                comm.Bcast(buffer, root=root)
        step, rng_state, shuffle_state = comm.bcast(
            (net.optimizer_step, net.rng_state, self.model._shuffle_rng.bit_generator.state),
            root=root)
        net.optimizer_step = step
        net.rng_state = rng_state
        self.model._shuffle_rng.bit_generator.state = shuffle_state

    def _allreduce_grads(self):
        self.comm.Allreduce(self.MPI.IN_PLACE, self.model._net.grads, op=self.MPI.SUM)

    # -- fit ------------------------------------------------------------------------------------
    def fit(self, X, y, epochs=1, batch_size=32, lr=None, *, optimizer=None, shuffle=True,
            validation_data=None, verbose=1, callbacks=None, validation_split=0.0, l2=0.0,
            max_grad_norm=None, schedule=None, on_divergence="raise", data="replicated"):
        from . import optimizers
        from . import schedules as schedules_module
        from ._validation import positive_float, positive_int
        from .progress import ProgressBar

        model, comm = self.model, self.comm
        if data not in ("replicated", "sharded"):
            raise ValueError(f"data must be 'replicated' or 'sharded', got {data!r}")
        if on_divergence not in ("raise", "warn"):
            raise ValueError(f"on_divergence must be 'raise' or 'warn', got {on_divergence!r}")
        X = model._features(X)
        Y = model._targets(y, X.shape[0])
        epochs = positive_int(epochs, "epochs")
        batch_size = positive_int(batch_size, "batch_size")
        if lr is not None:
            lr = positive_float(lr, "lr")
        l2 = float(l2)
        if not (l2 >= 0 and math.isfinite(l2)):
            raise ValueError(f"l2 must be a finite number >= 0, got {l2!r}")
        max_grad_norm = positive_float(max_grad_norm, "max_grad_norm") if max_grad_norm else 0.0
        split = float(validation_split)
        if split:
            if data == "sharded":
                raise ValueError("validation_split needs data='replicated'; with sharded data "
                                 "pass each rank's validation rows as validation_data")
            if validation_data is not None:
                raise ValueError("give validation_data or validation_split, not both")
            cut = int(X.shape[0] * (1.0 - split))
            if not 0.0 < split < 1.0 or cut < 1 or cut >= X.shape[0]:
                raise ValueError(f"validation_split={split} leaves no training or no "
                                 f"validation samples out of {X.shape[0]}")
            X, Y, validation_data = X[:cut], Y[:cut], (X[cut:], Y[cut:])
        validation = None
        if validation_data is not None:
            Xv, yv = validation_data
            Xv = model._features(Xv, "validation X")
            Yv = model._targets(yv, Xv.shape[0])
            if data == "replicated":  # each rank evaluates its share; the sums are allreduced
                start, stop = shard_range(Xv.shape[0], self.rank, self.size)
                Xv, Yv = Xv[start:stop], Yv[start:stop]
            validation = (Xv, Yv)
        schedule = schedules_module.get(schedule)
        if optimizer is not None or lr is not None:
            model._use_optimizer(optimizers.get(optimizer or model.optimizer, lr))
        base_lr = positive_float(model.optimizer.lr, "lr")
        # Callbacks (and the progress bar) run on rank 0 only; the others train silently.
        callbacks = list(callbacks or []) if self.rank == 0 else []
        if verbose and self.rank == 0:
            callbacks.append(ProgressBar())

        self.broadcast_model()
        net = model._net
        base_rng = net.rng_state
        net.rng_state = start_rng = _rank_rng_state(base_rng, self.rank)
        if data == "replicated":
            n_global = X.shape[0]
            counts = None
        else:
            counts = np.array(comm.allgather(int(X.shape[0])), dtype=np.int64)
            n_global = int(counts.sum())
            if n_global == 0:
                raise ValueError("no rank holds any training samples")
        steps = math.ceil(n_global / batch_size)
        model.schedule = schedule
        model.stop_training = False
        schedule.begin(epochs, steps, n_global)
        for cb in callbacks:
            cb.set_model(model)
        for cb in callbacks:
            cb.on_train_begin({"epochs": epochs, "batches_per_epoch": steps,
                               "samples_per_epoch": n_global, "ranks": self.size})
        def diverge(message):  # reached on every rank at the same step, as in Sequential.fit
            if on_divergence == "raise":
                raise FloatingPointError(message)
            warnings.warn(message, RuntimeWarning, stacklevel=4)
            model.stop_training = True
            return True

        t_grad = t_reduce = t_update = 0.0
        epoch, diverged = -1, False
        for epoch in range(epochs):
            start_time = time.perf_counter()
            for cb in callbacks:
                cb.on_epoch_begin(epoch, {})
            plan = self._epoch_plan(X.shape[0], n_global, batch_size, steps, shuffle, counts)
            rates = schedule.epoch_rates(base_lr, 0, steps)
            model._check_rates(rates, schedule, epoch)
            local = np.zeros(6)  # loss_sum, n_correct, n_samples, val_loss_sum, val_correct, val_n
            grad_norm, last_report, reported = 0.0, time.perf_counter(), 0
            for k, (rows, scale) in enumerate(plan):
                t0 = time.perf_counter()
                net.zero_grad()
                if rows is not None and len(rows):
                    loss_sum, n_correct, _ = net.accumulate_gradients(X[rows], Y[rows], scale,
                                                                      True, False)
                    if not math.isfinite(loss_sum):
                        net.grads[0] = np.nan  # every rank then sees a non-finite gradient
                    local[0] += loss_sum
                    local[1] += n_correct
                    local[2] += len(rows)
                t1 = time.perf_counter()
                self._allreduce_grads()
                t2 = time.perf_counter()
                result = net.apply_gradients(rates[k], l2, max_grad_norm)
                t_update += time.perf_counter() - t2
                t_grad += t1 - t0
                t_reduce += t2 - t1
                if not result["applied"]:  # on every rank alike: the gradients are summed
                    diverged = diverge(model._divergence_message(k, result))
                    break
                grad_norm = result["grad_norm"]
                if callbacks and (time.perf_counter() - last_report > _CHUNK_SECONDS
                                  or k == steps - 1):
                    logs = model._train_metrics(local[0], local[1], local[2])
                    logs.update(first_batch=reported, n_batches=k + 1 - reported,
                                batches_done=k + 1, samples=int(local[2]) * self.size,
                                lr=rates[k])
                    for cb in callbacks:
                        cb.on_batch_end(k, logs)
                    last_report, reported = time.perf_counter(), k + 1
            if not diverged and not np.isfinite(net.params).all():  # the epoch's last update
                diverged = diverge(model._divergence_message(steps, {"nonfinite_layer": -1}))
            if diverged:  # as in Sequential.fit: the epoch is not counted
                break
            if validation is not None and validation[0].shape[0]:
                v_loss, v_correct = net.evaluate(*validation)
                local[3:] = (v_loss, v_correct, validation[0].shape[0])
            # One small allreduce per epoch for the statistics (not per step).
            totals = np.empty_like(local)
            comm.Allreduce(local, totals, op=self.MPI.SUM)
            logs = model._train_metrics(totals[0], int(totals[1]), int(totals[2]))
            if validation is not None:
                v = {"loss": totals[3] / max(totals[5], 1)}
                if model.is_classifier:
                    v["accuracy"] = totals[4] / max(totals[5], 1)
                logs.update({f"val_{key}": value for key, value in v.items()})
            logs.update(lr=rates[-1], grad_norm=grad_norm,
                        time=time.perf_counter() - start_time)
            model._epochs_done += 1
            schedule.end_epoch(logs, steps, n_global)
            model.history.append(model._epochs_done, logs)
            for cb in callbacks:
                cb.on_epoch_end(epoch, dict(logs))
            model.stop_training = comm.bcast(bool(model.stop_training), root=0)
            if model.stop_training:
                break
        for cb in callbacks:
            cb.on_train_end({"epochs_run": epoch + 1})
        # Leave the dropout stream where a single process would: advanced by the draws of all
        # ranks (SplitMix64's state moves by GAMMA per draw, and GAMMA is odd, so invertible).
        draws = (net.rng_state - start_rng) * pow(_GAMMA, -1, 1 << 64) % (1 << 64)
        total = sum(comm.allgather(int(draws))) % (1 << 64)
        net.rng_state = (base_rng + total * _GAMMA) % (1 << 64)
        # Callbacks on rank 0 may have changed its weights (restore_best_weights): re-sync.
        self.broadcast_model()
        self.timings = {"steps": steps * (epoch + 1), "compute": t_grad, "allreduce": t_reduce,
                        "update": t_update}
        return model.history

    def _epoch_plan(self, n_local, n_global, batch_size, steps, shuffle, counts):
        """[(rows of the local X, scale)] for each step of the epoch on this rank."""
        rng = self.model._shuffle_rng
        if counts is None:  # replicated: Sequential.fit's permutation, split per batch
            order = rng.permutation(n_global) if shuffle else np.arange(n_global)
            plan = []
            for k in range(steps):
                first = k * batch_size
                B = min(batch_size, n_global - first)
                a, b = shard_range(B, self.rank, self.size)
                plan.append((order[first + a:first + b], 1.0 / B))
            return plan
        # sharded: step k takes chunk k of `steps` near-equal chunks of each rank's own rows
        # (shuffled by a stream derived from the shared generator and the rank).
        seed = int(rng.integers(1 << 63)) if shuffle else 0
        order = (np.random.default_rng([seed, self.rank]).permutation(n_local) if shuffle
                 else np.arange(n_local))
        cuts = counts[:, None] * np.arange(steps + 1)[None, :] // steps  # (ranks, steps + 1)
        sizes = np.diff(cuts, axis=1).sum(axis=0)                         # global batch per step
        mine = cuts[self.rank]
        return [(order[mine[k]:mine[k + 1]], 1.0 / sizes[k]) for k in range(steps)]


def fit(model, X, y, epochs=1, batch_size=32, lr=None, *, comm=None, data="replicated",
        **kwargs):
    """Data-parallel ``model.fit`` over MPI; call it on every rank (e.g. under mpirun).

    Takes Sequential.fit's arguments. ``batch_size`` is the global batch, split in contiguous
    shares across the ranks. data="replicated": every rank passes the whole X, y; the result
    equals a single-process fit up to summation order. data="sharded": each rank passes only
    its own rows (e.g. from load_idx_shard or shard); each step trains on about
    batch_size·n_rank/n samples of every rank (steps per epoch = ceil(n / batch_size)), so the
    result depends on the rank count. Returns the History (identical on every rank).
    """
    trainer = DistributedTrainer(model, comm)
    return trainer.fit(X, y, epochs, batch_size, lr, data=data, **kwargs)
