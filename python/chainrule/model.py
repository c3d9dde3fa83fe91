"""Sequential: a stack of Dense layers, trained by the C++ core one chunk of batches per call."""

import contextlib
import math
import signal
import threading
import time
import warnings

import numpy as np

from . import _core, optimizers
from . import schedules as schedules_module
from ._validation import (as_dtype, as_features, as_targets, check_network_size, finite_float,
                          positive_float, positive_int, seed_value)
from .history import History
from .layers import Dense, Dropout
from .progress import ProgressBar

_OUTPUT_ACTIVATION = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid",
                      "mse": "identity"}
_CHUNK_SECONDS = 0.05  # how long one call into C++ may run between progress updates
# torch.optim's names for the core's three state buffers, per optimizer.
_STATE_NAMES = {"sgd": ("momentum_buffer", None, None), "adam": ("exp_avg", "exp_avg_sq", None),
                "adamw": ("exp_avg", "exp_avg_sq", None),
                "rmsprop": ("momentum_buffer", "square_avg", "grad_avg"),
                "adagrad": (None, "sum", None)}


class _ParamLock:
    """The core's lock on the parameters (cpp/chainrule/param_lock.hpp): many readers (predict,
    evaluate, save) or one writer (a training chunk, set_weights) at a time; waiting writers go
    first, so a stream of predictions cannot starve training. fit holds the write side only
    while the core trains one chunk (about 50 ms). predict and evaluate take the read side in
    C++, with the GIL released; ``with lock.read():`` and ``with lock.write():`` take it here."""

    __slots__ = ("_read_side", "_write_side")

    def __init__(self, net):
        self._read_side = _LockSide(net, exclusive=False)
        self._write_side = _LockSide(net, exclusive=True)

    def read(self):
        return self._read_side

    def write(self):
        return self._write_side


class _LockSide:
    __slots__ = ("_net", "_exclusive")

    def __init__(self, net, exclusive):
        self._net = net
        self._exclusive = exclusive

    def __enter__(self):
        self._net.lock_params(self._exclusive)

    def __exit__(self, *exc):
        self._net.unlock_params(self._exclusive)


@contextlib.contextmanager
def _sigint_deferred():
    """Hold a Ctrl-C back until the block ends, so that KeyboardInterrupt is raised between
    training chunks, never between a chunk's update of the weights and its bookkeeping.
    Only in the main thread and only when SIGINT has Python's default handler."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            raise KeyboardInterrupt


def _resolve_layers(layers):
    """Dense layers with Dropout markers folded into the layer before them."""
    dense = []
    for layer in layers:
        if isinstance(layer, Dropout):
            if not dense:
                raise ValueError("Dropout must follow a Dense layer")
            dense[-1].dropout = layer.rate
        elif isinstance(layer, Dense):
            # A Dense is a view of its model's weights: shared, it would read and write the
            # newest model's buffers while the older model trained on its own.
            if any(layer is d for d in dense):
                raise ValueError(f"{layer!r} appears twice; each position needs its own layer")
            if layer._views is not None:
                raise ValueError(f"{layer!r} already belongs to a model; a layer holds its "
                                 f"model's weights, so each model needs layers of its own")
            dense.append(layer)
        else:
            raise TypeError(f"layers must be Dense or Dropout, got {layer!r}")
    if not dense:
        raise ValueError("a model needs at least one Dense layer")
    for prev, layer in zip(dense, dense[1:]):
        if prev.n_out != layer.n_in:
            raise ValueError(f"{prev!r} has {prev.n_out} outputs but the next layer {layer!r} "
                             f"expects {layer.n_in} inputs")
    if dense[-1].dropout:
        raise ValueError("the output layer takes no dropout")
    return dense


class Sequential:
    """A feed-forward network of Dense layers with a loss.

    loss: "cross_entropy" (softmax output; integer labels or one-hot targets),
    "binary_cross_entropy" (sigmoid outputs; 0/1 targets) or "mse" (regression).
    seed fixes initialization, shuffling and dropout: same seed and data, same weights.
    """

    def __init__(self, layers, loss="cross_entropy", *, optimizer="sgd", dtype="float32",
                 seed=0, leaky_slope=0.01):
        if loss not in _core.LOSSES:
            raise ValueError(f"unknown loss {loss!r}; valid names: {', '.join(_core.LOSSES)}")
        self.layers = _resolve_layers(list(layers))
        self.loss = loss
        self.dtype = as_dtype(dtype)
        self.seed = seed = seed_value(seed)
        leaky_slope = finite_float(leaky_slope, "leaky_slope")
        last = len(self.layers) - 1
        activations = [layer.activation or (_OUTPUT_ACTIVATION[loss] if i == last else "relu")
                       for i, layer in enumerate(self.layers)]
        for layer, act in zip(self.layers, activations):
            layer.activation = act
        sizes = [self.layers[0].n_in] + [layer.n_out for layer in self.layers]
        check_network_size(sizes, np.dtype(self.dtype).itemsize)
        network_class = _core.Network32 if self.dtype == np.float32 else _core.Network64
        self._net = network_class(sizes, activations, loss, leaky_slope)
        self._net.dropout = [layer.dropout for layer in self.layers]
        for i, layer in enumerate(self.layers):
            layer._bind(self._net.layer_views(i))
        init_seq, shuffle_seq, dropout_seq = np.random.SeedSequence(seed).spawn(3)
        init_rng = np.random.default_rng(init_seq)
        for layer in self.layers:
            layer.W = layer.initial_weights(init_rng)
            layer.b = 0.0
        self._shuffle_rng = np.random.default_rng(shuffle_seq)
        self._net.rng_state = int(dropout_seq.generate_state(1, np.uint64)[0])
        self.optimizer = None
        self._use_optimizer(optimizers.get(optimizer))
        self.history = History()
        self._epochs_done = 0
        self.schedule = None      # the schedule of the last fit (kept in model files)
        self.stop_training = False  # callbacks set it to end fit after the current epoch
        self._fit_lock = threading.Lock()
        self._params_lock = _ParamLock(self._net)
        # Where a fit interrupted by KeyboardInterrupt stopped inside its epoch; the next fit on
        # data of the same size finishes that epoch first (see docs/reliability.md).
        self._partial_epoch = None

    # ----- description -------------------------------------------------------------------
    @property
    def sizes(self):
        return list(self._net.sizes)

    @property
    def n_params(self):
        return self._net.n_params

    @property
    def is_classifier(self):
        return self.loss != "mse"

    def __reduce__(self):
        """pickle and copy.deepcopy: what a model file holds (weights, optimizer state, random
        generators, history, an interrupted epoch) and the schedule; the copy is independent."""
        from .serialization import _unpickle, model_state

        header, arrays = model_state(self)
        return _unpickle, (header, arrays, self.schedule)

    def __repr__(self):
        return f"Sequential({self.layers!r}, loss={self.loss!r}, dtype={self.dtype.__name__})"

    def summary(self):
        """A table of the layers, their shapes and parameter counts."""
        rows = [f"{'layer':<8}{'shape':<14}{'activation':<12}{'dropout':<9}{'params':>10}"]
        for i, layer in enumerate(self.layers):
            n = layer.n_in * layer.n_out + layer.n_out
            rows.append(f"{i:<8}{f'{layer.n_in} -> {layer.n_out}':<14}{layer.activation:<12}"
                        f"{layer.dropout:<9g}{n:>10,}")
        rows.append(f"total parameters: {self.n_params:,}; loss: {self.loss}; "
                    f"dtype: {self.dtype.__name__}; optimizer: {self.optimizer!r}")
        return "\n".join(rows)

    def get_weights(self):
        """[(W, b), ...] as copies."""
        with self._params_lock.read():
            return [(layer.W.copy(), layer.b.copy()) for layer in self.layers]

    def set_weights(self, weights):
        if len(weights) != len(self.layers):
            raise ValueError(f"expected {len(self.layers)} (W, b) pairs, got {len(weights)}")
        for layer, (W, b) in zip(self.layers, weights):
            if np.shape(W) != layer.W.shape or np.shape(b) != layer.b.shape:
                raise ValueError(f"shapes {np.shape(W)}, {np.shape(b)} do not fit {layer!r}")
        checked = []
        for i, (W, b) in enumerate(weights):
            W, b = as_features(W, np.shape(W)[1], self.dtype, f"W[{i}]"), np.asarray(b)
            checked.append((W, as_features(b.reshape(1, -1), b.size, self.dtype, f"b[{i}]")))
        with self._params_lock.write():
            for layer, (W, b) in zip(self.layers, checked):
                layer.W, layer.b = W, b.ravel()

    # ----- input handling ------------------------------------------------------------------
    def _features(self, X, name="X"):
        return as_features(X, self.layers[0].n_in, self.dtype, name)

    def _targets(self, y, n_samples):
        return as_targets(y, n_samples, self.layers[-1].n_out, self.loss, self.dtype)

    def _use_optimizer(self, optimizer):
        if self.optimizer is None or optimizer.config() != self.optimizer.config():
            kind, options = optimizer.config()
            self._net.set_optimizer(kind, options)  # a new optimizer starts with fresh state
        self.optimizer = optimizer

    # ----- training ------------------------------------------------------------------------
    def fit(self, X, y, epochs=1, batch_size=32, lr=None, *, optimizer=None, shuffle=True,
            validation_data=None, verbose=1, callbacks=None, validation_split=0.0, l2=0.0,
            max_grad_norm=None, schedule=None, on_divergence="raise", distributed=None,
            **distributed_options):
        """Train with mini-batch gradient descent; returns the History (also self.history).

        lr and optimizer (a name or a chainrule.optimizers instance) replace the model's
        current ones; the optimizer's state carries over between fit calls while its settings
        stay the same.
        validation_data=(Xv, yv), or validation_split=f to hold out the last fraction f of X
        (before shuffling, as Keras does): adds val_loss (and val_accuracy) to the history.
        l2: coupled L2 penalty on the weights (not the biases), gradient + l2·W (the recorded
        loss leaves the penalty out);
        scikit-learn's alpha with batch size B is l2 = alpha / B. For decoupled weight decay
        use optimizers.AdamW(weight_decay=...).
        max_grad_norm: clip the global gradient norm of each batch to this value.
        schedule: a chainrule.schedules.Schedule (or "cosine", "invscaling", "plateau");
        None keeps the rate constant. Passing the same schedule object again continues it.
        callbacks: chainrule.callbacks.Callback instances (EarlyStopping, CSVLogger, ...);
        verbose=1 adds a ProgressBar.
        on_divergence: a non-finite loss or gradient stops training with FloatingPointError
        ("raise") or with a RuntimeWarning ("warn"); either way the weights are those of the
        last finite step and the history of the completed epochs is kept.
        KeyboardInterrupt (Ctrl-C) leaves the model at the last completed batch; calling fit
        again with data of the same size finishes the interrupted epoch first.
        distributed="mpi": synchronous data-parallel training over MPI ranks (launch with
        mpirun); extra keywords (comm, data) go to chainrule.distributed.fit.
        """
        if distributed is not None:
            if distributed != "mpi":
                raise ValueError(f"distributed must be None or 'mpi', got {distributed!r}")
            from . import distributed as distributed_module
            return distributed_module.fit(
                self, X, y, epochs, batch_size, lr, optimizer=optimizer, shuffle=shuffle,
                validation_data=validation_data, verbose=verbose, callbacks=callbacks,
                validation_split=validation_split, l2=l2, max_grad_norm=max_grad_norm,
                schedule=schedule, on_divergence=on_divergence, **distributed_options)
        if distributed_options:
            raise TypeError(f"unexpected keyword arguments {sorted(distributed_options)}")
        X = self._features(X)
        Y = self._targets(y, X.shape[0])
        epochs = positive_int(epochs, "epochs")
        batch_size = positive_int(batch_size, "batch_size")
        if on_divergence not in ("raise", "warn"):
            raise ValueError(f"on_divergence must be 'raise' or 'warn', got {on_divergence!r}")
        if lr is not None:
            lr = positive_float(lr, "lr")
        l2 = float(l2)
        if not (l2 >= 0 and math.isfinite(l2)):
            raise ValueError(f"l2 must be a finite number >= 0, got {l2!r}")
        if max_grad_norm is not None:
            max_grad_norm = positive_float(max_grad_norm, "max_grad_norm")
        split = float(validation_split)
        if not 0.0 <= split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
        if split and validation_data is not None:
            raise ValueError("give validation_data or validation_split, not both")
        schedule = schedules_module.get(schedule)
        callbacks = list(callbacks or [])
        for cb in callbacks:
            if not callable(getattr(cb, "on_epoch_end", None)):
                raise TypeError(f"callbacks must be chainrule.callbacks.Callback instances, "
                                f"got {cb!r}")
        if optimizer is not None or lr is not None:
            self._use_optimizer(optimizers.get(optimizer or self.optimizer, lr))
        base_lr = positive_float(self.optimizer.lr, "lr")
        validation = None
        if validation_data is not None:
            try:
                Xv, yv = validation_data
            except (TypeError, ValueError):
                raise ValueError("validation_data must be a pair (X, y)") from None
            Xv = self._features(Xv, "validation X")
            validation = (Xv, self._targets(yv, Xv.shape[0]))
        elif split:
            cut = int(X.shape[0] * (1.0 - split))
            if cut < 1 or cut >= X.shape[0]:
                raise ValueError(f"validation_split={split} leaves no training or no "
                                 f"validation samples out of {X.shape[0]}")
            X, Y, validation = X[:cut], Y[:cut], (X[cut:], Y[cut:])
        if verbose:
            callbacks.append(ProgressBar())
        if not self._fit_lock.acquire(blocking=False):
            raise RuntimeError("fit is already running on this model in another thread")
        try:
            self.schedule = schedule
            options = {"l2": l2, "max_grad_norm": max_grad_norm or 0.0}
            batch_size = min(batch_size, X.shape[0])  # one batch holds at most all samples
            return self._fit_epochs(X, Y, epochs, batch_size, base_lr, bool(shuffle),
                                    validation, callbacks, schedule, options, on_divergence)
        finally:
            self._fit_lock.release()

    def _fit_epochs(self, X, Y, epochs, batch_size, base_lr, shuffle, validation, callbacks,
                    schedule, options, on_divergence):
        n = X.shape[0]
        n_batches = math.ceil(n / batch_size)
        self.stop_training = False
        partial = self._resume_position(n, batch_size, shuffle)
        schedule.begin(epochs, n_batches, n)
        for cb in callbacks:
            cb.set_model(self)
        train_logs = {"epochs": epochs, "batches_per_epoch": n_batches, "samples_per_epoch": n}
        for cb in callbacks:
            cb.on_train_begin(train_logs)
        epoch, position = -1, None
        try:
            for epoch in range(epochs):
                start = time.perf_counter()
                for cb in callbacks:
                    cb.on_epoch_begin(epoch, {})
                if partial is not None:  # finish the epoch an interrupted fit left
                    position, partial = partial, None
                else:
                    position = {"n": n, "batch_size": batch_size, "shuffle": shuffle,
                                "order": self._shuffle_rng.permutation(n) if shuffle else None,
                                "batches_done": 0, "loss_sum": 0.0, "n_correct": 0,
                                "n_seen": 0, "grad_norm": 0.0}
                if not self._train_epoch(X, Y, position, n_batches, epoch, base_lr, schedule,
                                         options, callbacks, on_divergence):
                    position = None
                    break  # diverged, with on_divergence="warn"
                logs = self._train_metrics(position["loss_sum"], position["n_correct"],
                                           position["n_seen"])
                if validation is not None:
                    logs.update({f"val_{k}": v for k, v in self._evaluate(*validation).items()})
                logs.update(lr=position["lr"], grad_norm=position["grad_norm"],
                            time=time.perf_counter() - start)
                with _sigint_deferred():  # the epoch is counted completely or not at all
                    self._epochs_done += 1
                    schedule.end_epoch(logs, n_batches, n)
                    self.history.append(self._epochs_done, logs)
                    position = None
                for cb in callbacks:
                    cb.on_epoch_end(epoch, dict(logs))
                if self.stop_training:
                    break
        except KeyboardInterrupt:
            # The weights are those after the last completed chunk of batches (the core trains
            # a chunk with the GIL released; Ctrl-C is seen when it returns), and `position`
            # says how far into the epoch that is: keep it so the next fit finishes the epoch.
            self._partial_epoch = position
            raise
        for cb in callbacks:
            cb.on_train_end({"epochs_run": epoch + 1})
        return self.history

    def _train_in_order(self, X, Y, order, batch_size, first_batch, n_batches, lr, l2):
        """For chainrule.sklearn, which shuffles with scikit-learn's generator: n_batches steps
        on batches [first_batch, first_batch + n_batches) of the epoch that visits X's rows in
        `order` (a permutation of all rows, or None: as stored), at the constant rate lr.
        The same steps, to the bit, as fit(X[order], ..., shuffle=False), without copying the
        data: the core gathers each batch's rows itself. On MNIST that copy was a new 188 MB
        array per epoch and could take longer than the epoch's training (page faults).
        X and Y come from _features and _targets; no history, schedule or callbacks; a
        non-finite loss or gradient raises FloatingPointError. Returns the batches' loss sum."""
        self._use_optimizer(optimizers.get(self.optimizer, lr))
        base_lr = positive_float(self.optimizer.lr, "lr")
        position = {"n": X.shape[0], "batch_size": batch_size, "shuffle": order is not None,
                    "order": order, "batches_done": first_batch, "loss_sum": 0.0,
                    "n_correct": 0, "n_seen": 0, "grad_norm": 0.0}
        if not self._fit_lock.acquire(blocking=False):
            raise RuntimeError("fit is already running on this model in another thread")
        try:
            self._train_epoch(X, Y, position, first_batch + n_batches, self._epochs_done,
                              base_lr, schedules_module.Constant(),
                              {"l2": l2, "max_grad_norm": 0.0}, [], "raise")
        finally:
            self._fit_lock.release()
        return position["loss_sum"]

    def _resume_position(self, n, batch_size, shuffle):
        """The interrupted epoch to finish first, if the data has the same size and batching."""
        partial, self._partial_epoch = self._partial_epoch, None
        if partial is None:
            return None
        if (partial["n"], partial["batch_size"], partial["shuffle"]) != (n, batch_size, shuffle):
            warnings.warn(f"fit was interrupted {partial['batches_done']} batches into an epoch "
                          f"of {partial['n']} samples in batches of {partial['batch_size']} "
                          f"(shuffle={partial['shuffle']}); this fit has {n} samples in batches "
                          f"of {batch_size} (shuffle={shuffle}), so it starts a new epoch",
                          RuntimeWarning, stacklevel=4)
            return None
        return partial

    def _train_epoch(self, X, Y, position, n_batches, epoch, base_lr, schedule, options,
                     callbacks, on_divergence):
        """Trains the rest of one epoch from position["batches_done"], updating position after
        each chunk; False if training diverged and on_divergence is "warn"."""
        chunk = 1
        position.setdefault("lr", base_lr)
        while position["batches_done"] < n_batches:
            done = position["batches_done"]
            count = min(chunk, n_batches - done)
            rates = schedule.epoch_rates(base_lr, done, count)
            self._check_rates(rates, schedule, epoch)
            t = time.perf_counter()
            with _sigint_deferred(), self._params_lock.write():
                stats = self._net.train_batches(X, Y, position["order"], position["batch_size"],
                                                done, count,
                                                rates if schedule.per_step else rates[-1],
                                                **options)
                position["loss_sum"] += stats["loss_sum"]
                position["n_correct"] += stats["n_correct"]
                position["n_seen"] += stats["n_samples"]
                position["batches_done"] = done + stats["n_batches"]
                if stats["n_batches"]:
                    position["grad_norm"] = stats["grad_norm"]
                    position["lr"] = rates[stats["n_batches"] - 1]
            # The core checks each batch's loss and gradients before its update; the weights
            # that the chunk's last update left are checked here.
            if (stats["nonfinite_loss"] or stats["nonfinite_layer"] >= 0
                    or not np.isfinite(self._net.params).all()):
                message = self._divergence_message(position["batches_done"], stats)
                if on_divergence == "raise":
                    raise FloatingPointError(message)
                warnings.warn(message, RuntimeWarning, stacklevel=4)
                self.stop_training = True
                return False
            # Grow the chunk until a call takes about _CHUNK_SECONDS.
            took = time.perf_counter() - t
            chunk = max(1, min(4 * count, int(count * _CHUNK_SECONDS / max(took, 1e-9))))
            if callbacks:
                done = position["batches_done"]
                logs = self._train_metrics(position["loss_sum"], position["n_correct"],
                                           position["n_seen"])
                logs.update(first_batch=done - count, n_batches=count, batches_done=done,
                            samples=position["n_seen"], lr=position["lr"])
                for cb in callbacks:
                    cb.on_batch_end(done - 1, logs)
        return True

    @staticmethod
    def _check_rates(rates, schedule, epoch):
        for rate in rates:
            if not (rate > 0 and math.isfinite(rate)):
                raise ValueError(f"{schedule!r} gives the learning rate {rate!r} in epoch "
                                 f"{epoch + 1}; rates must be positive (a finished cosine "
                                 f"schedule stays at min_lr: give min_lr > 0 or more epochs)")

    @property
    def optimizer_state(self):
        """The optimizer's state as numpy views into the C++ buffers, with torch.optim's names:
        {"step": t, "momentum_buffer" | "exp_avg", "exp_avg_sq" | "square_avg", "grad_avg" |
        "sum": flat arrays over all parameters, in the layout of model._net.params}."""
        names = _STATE_NAMES[self.optimizer.kind]
        state = {"step": self._net.optimizer_step}
        for name, buffer in zip(names, self._net.optimizer_state()):
            if name is not None and buffer.size:
                state[name] = buffer
        return state

    def _train_metrics(self, loss_sum, n_correct, n_seen):
        logs = {"loss": loss_sum / max(n_seen, 1)}
        if self.is_classifier:
            logs["accuracy"] = n_correct / max(n_seen, 1)
        return logs

    def _divergence_message(self, batches_done, stats):
        """Why training stopped, batches_done batches into the current epoch."""
        epoch = f"training diverged at epoch {self._epochs_done + 1}"
        if np.isfinite(self._net.params).all():
            layer = stats["nonfinite_layer"]
            where = f"; the gradient of layer {layer} is not finite" if layer >= 0 else ""
            what = (f"{epoch}, batch {batches_done + 1}: the loss is not finite{where}. The "
                    f"weights are those of the last finite step")
        elif batches_done:
            what = (f"{epoch}, batch {batches_done}: its update overflowed the weights, which "
                    f"are not finite now (no finite copy is kept)")
        else:
            what = f"{epoch}: the weights were not finite before its first batch"
        return (f"{what}; the history keeps the completed epochs. Try a smaller learning "
                f"rate, max_grad_norm or scaled inputs.")

    # ----- inference -----------------------------------------------------------------------
    def _evaluate(self, X, Y):
        loss_sum, n_correct = self._net.evaluate(X, Y)  # under the parameters' read lock
        logs = {"loss": loss_sum / X.shape[0]}
        if self.is_classifier:
            logs["accuracy"] = n_correct / X.shape[0]
        return logs

    def evaluate(self, X, y):
        """{"loss": mean cost, "accuracy": ...} on (X, y); accuracy for classifiers only."""
        X = self._features(X)
        return self._evaluate(X, self._targets(y, X.shape[0]))

    def forward(self, X):
        """The output layer's activations a, shape (n, n_out)."""
        # Both calls take the parameters' read lock in C++. The first returns None unless X is
        # already what the core takes; it checks finiteness itself, in the same call.
        a = self._net.predict_if_ready(X)
        return a if a is not None else self._net.predict(self._features(X))

    def predict_proba(self, X):
        """Class probabilities: softmax outputs, or sigmoid outputs for binary cross-entropy."""
        if not self.is_classifier:
            raise AttributeError("predict_proba is for classifiers; this model's loss is mse")
        return self.forward(X)

    def predict(self, X):
        """Class labels for classifiers; predicted values (flattened if single) for mse."""
        a = self.forward(X)
        if self.loss == "cross_entropy":
            return a.argmax(axis=1)
        if self.loss == "binary_cross_entropy":
            labels = (a > 0.5).astype(np.int64)
            return labels.ravel() if labels.shape[1] == 1 else labels
        return a.ravel() if a.shape[1] == 1 else a

    # ----- files ---------------------------------------------------------------------------
    def save(self, path):
        """Write the model (architecture, weights, optimizer state, training position) to path;
        read it back with chainrule.load(path)."""
        from .serialization import save
        save(self, path)

    # ----- gradients -----------------------------------------------------------------------
    def gradients(self, X, y):
        """One forward/backward pass without an update: the batch's mean cost and its gradients
        {"loss", "dW": [...], "db": [...], "dx"}, where dx[k] = ∂C_k/∂x_k per sample."""
        X = self._features(X)
        Y = self._targets(y, X.shape[0])
        with self._params_lock.write():  # the gradient buffers are shared with training
            self._net.zero_grad()
            loss_sum, _, dx = self._net.accumulate_gradients(X, Y, 1.0 / X.shape[0], False,
                                                             True)
            return {"loss": loss_sum / X.shape[0],
                    "dW": [layer.dW.copy() for layer in self.layers],
                    "db": [layer.db.copy() for layer in self.layers],
                    "dx": dx}

    # ----- looking inside ------------------------------------------------------------------
    def backprop(self, X, y):
        """Per layer z, a, δ = ∂C_k/∂z, dW and db of one pass, without an update
        (see chainrule.backprop)."""
        from .backprop import backprop
        return backprop(self, X, y)

    def gradcheck(self, X, y, **options):
        """Backpropagation against central differences in float64 (see chainrule.gradcheck)."""
        from .backprop import gradcheck
        return gradcheck(self, X, y, **options)

    def explain(self, X, y, **options):
        """Print each factor of the chain rule for a chain of single neurons."""
        from .backprop import explain
        return explain(self, X, y, **options)

    def plot(self, kind="summary", **options):
        """A matplotlib figure: "summary", "history", "weights" or "network"."""
        from . import plots
        drawers = {"summary": plots.plot_model, "history": plots.plot_history,
                   "weights": plots.plot_weights, "network": plots.plot_network}
        if kind not in drawers:
            raise ValueError(f"unknown plot kind {kind!r}; valid kinds: {', '.join(drawers)}")
        return drawers[kind](self, **options)
