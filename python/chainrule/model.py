"""Sequential: a stack of Dense layers, trained by the C++ core one chunk of batches per call."""

import math
import threading
import time

import numpy as np

from . import _core, optimizers
from ._validation import as_dtype, as_features, as_targets, positive_float, positive_int
from .history import History
from .layers import Dense, Dropout
from .progress import ProgressBar

_OUTPUT_ACTIVATION = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid",
                      "mse": "identity"}
_CHUNK_SECONDS = 0.05  # how long one call into C++ may run between progress updates


def _resolve_layers(layers):
    """Dense layers with Dropout markers folded into the layer before them."""
    dense = []
    for layer in layers:
        if isinstance(layer, Dropout):
            if not dense:
                raise ValueError("Dropout must follow a Dense layer")
            dense[-1].dropout = layer.rate
        elif isinstance(layer, Dense):
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
        self.seed = seed
        last = len(self.layers) - 1
        activations = [layer.activation or (_OUTPUT_ACTIVATION[loss] if i == last else "relu")
                       for i, layer in enumerate(self.layers)]
        for layer, act in zip(self.layers, activations):
            layer.activation = act
        sizes = [self.layers[0].n_in] + [layer.n_out for layer in self.layers]
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
        self._fit_lock = threading.Lock()

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
        return [(layer.W.copy(), layer.b.copy()) for layer in self.layers]

    def set_weights(self, weights):
        if len(weights) != len(self.layers):
            raise ValueError(f"expected {len(self.layers)} (W, b) pairs, got {len(weights)}")
        for layer, (W, b) in zip(self.layers, weights):
            if np.shape(W) != layer.W.shape or np.shape(b) != layer.b.shape:
                raise ValueError(f"shapes {np.shape(W)}, {np.shape(b)} do not fit {layer!r}")
            layer.W, layer.b = W, b

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
            validation_data=None, verbose=1):
        """Train with mini-batch gradient descent; returns the History (also self.history).

        lr and optimizer (a name or a chainrule.optimizers instance) replace the model's
        current ones; the optimizer's state carries over between fit calls while its settings
        stay the same.
        """
        X = self._features(X)
        Y = self._targets(y, X.shape[0])
        epochs = positive_int(epochs, "epochs")
        batch_size = positive_int(batch_size, "batch_size")
        if lr is not None:
            lr = positive_float(lr, "lr")
        if optimizer is not None or lr is not None:
            self._use_optimizer(optimizers.get(optimizer or self.optimizer, lr))
        lr = positive_float(self.optimizer.lr, "lr")
        if validation_data is not None:
            Xv, yv = validation_data
            Xv = self._features(Xv, "validation X")
            Yv = self._targets(yv, Xv.shape[0])
        if not self._fit_lock.acquire(blocking=False):
            raise RuntimeError("fit is already running on this model in another thread")
        try:
            return self._fit_epochs(X, Y, epochs, batch_size, lr, shuffle,
                                    (Xv, Yv) if validation_data is not None else None, verbose)
        finally:
            self._fit_lock.release()

    def _fit_epochs(self, X, Y, epochs, batch_size, lr, shuffle, validation, verbose):
        n = X.shape[0]
        n_batches = math.ceil(n / batch_size)
        bar = ProgressBar(epochs, n_batches) if verbose else None
        for epoch in range(epochs):
            start = time.perf_counter()
            if bar:
                bar.begin_epoch(epoch)
            order = self._shuffle_rng.permutation(n) if shuffle else None
            loss_sum, n_correct, n_seen, done, chunk, grad_norm = 0.0, 0, 0, 0, 1, 0.0
            while done < n_batches:
                count = min(chunk, n_batches - done)
                t = time.perf_counter()
                stats = self._net.train_batches(X, Y, order, batch_size, done, count, lr)
                loss_sum += stats["loss_sum"]
                n_correct += stats["n_correct"]
                n_seen += stats["n_samples"]
                if stats["n_batches"]:
                    grad_norm = stats["grad_norm"]
                if stats["nonfinite_loss"] or stats["nonfinite_layer"] >= 0:
                    self._raise_divergence(epoch, done + stats["n_batches"], stats)
                done += count
                # Grow the chunk until a call takes about _CHUNK_SECONDS.
                took = time.perf_counter() - t
                chunk = max(1, min(4 * count, int(count * _CHUNK_SECONDS / max(took, 1e-9))))
                if bar:
                    bar.update(done, self._train_metrics(loss_sum, n_correct, n_seen), n_seen)
            logs = self._train_metrics(loss_sum, n_correct, n_seen)
            if validation is not None:
                logs.update({f"val_{k}": v for k, v in self._evaluate(*validation).items()})
            logs.update(lr=lr, grad_norm=grad_norm, time=time.perf_counter() - start)
            self._epochs_done += 1
            self.history.append(self._epochs_done, logs)
            if bar:
                bar.end_epoch({k: logs[k] for k in logs if k not in ("lr", "grad_norm", "time")},
                              n_seen)
        return self.history

    def _train_metrics(self, loss_sum, n_correct, n_seen):
        logs = {"loss": loss_sum / max(n_seen, 1)}
        if self.is_classifier:
            logs["accuracy"] = n_correct / max(n_seen, 1)
        return logs

    def _raise_divergence(self, epoch, batch, stats):
        layer = stats["nonfinite_layer"]
        where = f"; the gradient of layer {layer} is not finite" if layer >= 0 else ""
        raise FloatingPointError(
            f"training diverged at epoch {epoch + 1}, batch {batch + 1}: the loss is not "
            f"finite{where}. The weights are those of the last finite step; try a smaller "
            f"learning rate.")

    # ----- inference -----------------------------------------------------------------------
    def _evaluate(self, X, Y):
        loss_sum, n_correct = self._net.evaluate(X, Y)
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
        return self._net.predict(self._features(X))

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
        self._net.zero_grad()
        loss_sum, _, dx = self._net.accumulate_gradients(X, Y, 1.0 / X.shape[0], False, True)
        return {"loss": loss_sum / X.shape[0],
                "dW": [layer.dW.copy() for layer in self.layers],
                "db": [layer.db.copy() for layer in self.layers],
                "dx": dx}
