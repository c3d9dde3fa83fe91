"""scikit-learn compatible estimators: MLPClassifier and MLPRegressor on the chainrule core.

Change ``from sklearn.neural_network import MLPClassifier`` to
``from chainrule.sklearn import MLPClassifier``: same constructor parameters, defaults, fitted
attributes and training procedure (initialization, shuffling, early-stopping split, convergence
test, learning-rate rules all follow scikit-learn's MLP and draw from the same random stream),
with the epochs run by the C++ core. docs/sklearn.md says exactly what matches and what does not.

Needs scikit-learn (``pip install chainrule[sklearn]``); chainrule itself does not.
"""

try:
    import sklearn as _sklearn  # noqa: F401  (the top-level scikit-learn, not this module)
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError("chainrule.sklearn needs scikit-learn: pip install chainrule[sklearn]"
                      ) from exc

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils import shuffle as _sk_shuffle
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted

from . import _core, optimizers
from ._validation import as_dtype
from .history import History
from .layers import Dense
from .model import Sequential

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    def _validate_data(estimator, *args, **kwargs):
        return estimator._validate_data(*args, **kwargs)

__all__ = ["MLPClassifier", "MLPRegressor"]

_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
_OUT_ACTIVATION = {"cross_entropy": "softmax", "binary_cross_entropy": "logistic",
                   "mse": "identity"}


class _Threads:
    """Run a block with chainrule's thread count set to n (None: leave it alone)."""

    def __init__(self, n):
        self.n = n
        self.previous = None

    def __enter__(self):
        if self.n is not None:
            self.previous = _core.get_num_threads()
            _core.set_num_threads(int(self.n))

    def __exit__(self, *exc):
        if self.previous is not None:
            _core.set_num_threads(self.previous)


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _stochastic_solver(estimator):
    if estimator.solver not in ("sgd", "adam"):
        raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                             f"{estimator.solver} is not stochastic.")
    return True


class _BaseMLP(BaseEstimator):
    """Shared training code; use MLPClassifier or MLPRegressor."""

    _loss_kind = None  # set per fit: "cross_entropy", "binary_cross_entropy" or "mse"

    def _checked_arrays(self, X, y, reset, **options):
        """X and y validated as scikit-learn does, X dense in the estimator's dtype, and a
        column-vector y flattened with scikit-learn's warning."""
        X, y = _validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                              dtype=self._np_dtype, reset=reset, **options)
        X = _densify(X, self._np_dtype)
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected. Please "
                          "change the shape of y to (n_samples, ), for example using ravel().",
                          _data_conversion_warning())
            y = y.ravel()
        return X, y

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dtype="float32", n_threads=None, dropout=0.0, restore_best_weights=True):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.n_threads = n_threads
        self.dropout = dropout
        self.restore_best_weights = restore_best_weights

    # ----- parameter checks ------------------------------------------------------------------
    def _check_params(self):
        def fail(name, what):
            raise ValueError(f"The '{name}' parameter of {type(self).__name__} must be {what}. "
                             f"Got {getattr(self, name)!r} instead.")

        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        if not all(_is_int(s) for s in sizes):
            fail("hidden_layer_sizes", "an int or a sequence of ints")
        if any(s <= 0 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        if self.activation not in _ACTIVATIONS:
            fail("activation", "a str among {'identity', 'logistic', 'tanh', 'relu'}")
        if self.solver not in ("sgd", "adam", "lbfgs"):
            fail("solver", "a str among {'lbfgs', 'sgd', 'adam'}")
        if self.learning_rate not in ("constant", "invscaling", "adaptive"):
            fail("learning_rate", "a str among {'constant', 'invscaling', 'adaptive'}")
        if not (self.batch_size == "auto" or (_is_int(self.batch_size) and self.batch_size >= 1)):
            fail("batch_size", "'auto' or an int in the range [1, inf)")
        for name, low, high, closed in (
                ("alpha", 0, None, "left"), ("learning_rate_init", 0, None, "neither"),
                ("power_t", 0, None, "left"), ("tol", 0, None, "left"),
                ("momentum", 0, 1, "both"), ("validation_fraction", 0, 1, "left"),
                ("beta_1", 0, 1, "left"), ("beta_2", 0, 1, "left"),
                ("epsilon", 0, None, "neither"), ("dropout", 0, 1, "left")):
            value = getattr(self, name)
            ok = _is_real(value) and bool(np.isfinite(value))
            if ok:
                ok = value >= low if closed in ("left", "both") else value > low
                if high is not None:
                    ok = ok and (value <= high if closed == "both" else value < high)
            if not ok:
                fail(name, f"a float in the range {'[' if closed in ('left', 'both') else '('}"
                           f"{low}, {high if high is not None else 'inf'}"
                           f"{']' if closed == 'both' else ')'}")
        for name in ("max_iter", "max_fun"):
            value = getattr(self, name)
            if not (_is_int(value) and value >= 1):
                fail(name, "an int in the range [1, inf)")
        if not ((_is_int(self.n_iter_no_change) and self.n_iter_no_change >= 1)
                or self.n_iter_no_change == np.inf):
            fail("n_iter_no_change", "an int in the range [1, inf) or inf")
        for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping",
                     "restore_best_weights"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                fail(name, "an instance of 'bool'")
        if not (isinstance(self.verbose, (bool, np.bool_)) or _is_int(self.verbose)):
            fail("verbose", "a bool or an int")
        if not (self.n_threads is None or (_is_int(self.n_threads) and self.n_threads >= 1)):
            fail("n_threads", "None or an int in the range [1, inf)")
        try:
            as_dtype(self.dtype)
        except ValueError:
            fail("dtype", "'float32' or 'float64'")
        if not (self.random_state is None or _is_int(self.random_state)
                or isinstance(self.random_state, np.random.RandomState)):
            fail("random_state", "None, an int or a numpy RandomState")
        if self.solver == "lbfgs" and self.dropout:
            raise ValueError("dropout needs a stochastic solver ('sgd' or 'adam'), "
                             "not 'lbfgs'")
        return sizes

    # ----- the chainrule model -------------------------------------------------------------
    @property
    def _np_dtype(self):
        return as_dtype(self.dtype)

    def _scale(self):
        """Ratio of the core's gradient to scikit-learn's: the core's mse is Σ_j (a_j − y_j)²,
        scikit-learn's squared error is half of it (its gradient per sample is a − y)."""
        return 2.0 if self._loss_kind == "mse" else 1.0

    def _core_optimizer(self, lr):
        c = self._scale()
        if self.solver == "sgd":
            return optimizers.SGD(lr=lr / c, momentum=self.momentum,
                                  nesterov=bool(self.nesterovs_momentum and self.momentum > 0))
        # Scaling every gradient by c scales Adam's moments by c and c²: eps·c keeps the
        # update identical.
        return optimizers.Adam(lr=lr, betas=(self.beta_1, self.beta_2), eps=self.epsilon * c)

    def _build_model(self, layer_units, seed):
        act = _ACTIVATIONS[self.activation]
        layers = [Dense(int(n_in), int(n_out), activation=act, dropout=self.dropout)
                  for n_in, n_out in zip(layer_units[:-2], layer_units[1:-1])]
        layers.append(Dense(int(layer_units[-2]), int(layer_units[-1])))
        lr = self.learning_rate_init
        opt = self._core_optimizer(lr) if self.solver != "lbfgs" else "sgd"
        model = Sequential(layers, loss=self._loss_kind, optimizer=opt, dtype=self._np_dtype,
                           seed=seed)
        self._model_built_with = self._model_config()
        return model

    def _model_config(self):
        """The parameters the core model is built with (beyond the layer sizes)."""
        return self.activation, np.dtype(self._np_dtype).name, float(self.dropout)

    def _model_seed(self, rs):
        if _is_int(self.random_state):
            return int(self.random_state)
        if self.dropout:  # dropout masks need a seed; only then does the stream move on
            return int(rs.randint(np.iinfo(np.int32).max))
        return 0

    def _push_weights(self):
        """Copy coefs_/intercepts_ (the estimator's public truth) into the core model."""
        model = self._get_model()
        model.set_weights(list(zip(self.coefs_, self.intercepts_)))
        return model

    def _pull_weights(self):
        weights = self._model.get_weights()
        self.coefs_ = [W for W, _ in weights]
        self.intercepts_ = [b for _, b in weights]

    def _get_model(self):
        model = getattr(self, "_model", None)
        if model is not None and self._model_built_with != self._model_config():
            # set_params changed activation, dtype or dropout since the model was built: build
            # it again from coefs_, as an unpickled copy would, keeping the optimizer state.
            self.__dict__.update(self.__getstate__())
            model = self._model = None
        if model is None:
            units = [self.n_features_in_] + [W.shape[1] for W in self.coefs_]
            self._loss_kind = self._fitted_loss
            model = self._build_model(units, getattr(self, "_seed", 0))
            model.set_weights(list(zip(self.coefs_, self.intercepts_)))
            state = getattr(self, "_saved_optimizer_state", None)
            if state is not None and self.solver != "lbfgs":
                self._load_optimizer_state(model, state)
            self._model = model
        self._loss_kind = self._fitted_loss
        return model

    @staticmethod
    def _load_optimizer_state(model, state):
        current = model.optimizer_state
        for key, value in state.items():
            if key == "step":
                model._net.optimizer_step = int(value)
            elif key in current:
                current[key][...] = value

    def __getstate__(self):
        state = dict(self.__dict__)
        model = state.pop("_model", None)
        if model is not None and self.solver != "lbfgs":
            state["_saved_optimizer_state"] = {
                k: (v if k == "step" else np.array(v)) for k, v in model.optimizer_state.items()}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._model = None

    def to_model(self):
        """An independent chainrule.Sequential with the fitted weights, loss and optimizer
        settings (and state): train it further, save it, inspect its gradients."""
        check_is_fitted(self, "coefs_")
        model = self._push_weights()
        copy = self._build_model(model.sizes, getattr(self, "_seed", 0))
        copy.set_weights(model.get_weights())
        copy._use_optimizer(model.optimizer)
        if self.solver != "lbfgs":
            self._load_optimizer_state(copy, {k: (v if k == "step" else np.array(v))
                                              for k, v in model.optimizer_state.items()})
        return copy

    # ----- input -------------------------------------------------------------------------
    def _check_X(self, X, reset):
        X = _validate_data(self, X, accept_sparse=["csr", "csc"], dtype=self._np_dtype,
                           reset=reset)
        return _densify(X, self._np_dtype)

    def _check_weights(self, sample_weight, n):
        if sample_weight is None:
            return None
        if isinstance(sample_weight, numbers.Number):
            return np.full(n, float(sample_weight))
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.ndim != 1 or w.shape[0] != n:
            raise ValueError(f"sample_weight.shape == {w.shape}, expected ({n},)!")
        if not np.isfinite(w).all():
            raise ValueError("sample_weight contains NaN or infinity")
        if (w < 0).any():
            raise ValueError("sample_weight must be non-negative")
        return w

    # ----- training ------------------------------------------------------------------------
    def _fit(self, X, y, sample_weight=None, incremental=False):
        sizes = self._check_params()
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, Y = self._validate_input(X, y, incremental, reset=first_pass)
        n_samples, n_features = X.shape
        if Y.ndim == 1:
            Y = Y.reshape(-1, 1)
        w = self._check_weights(sample_weight, n_samples)
        rs = check_random_state(self.random_state)
        with _Threads(self.n_threads):
            if first_pass:
                self._initialize(Y, [n_features] + sizes + [Y.shape[1]], rs)
            else:
                if Y.shape[1] != self.n_outputs_:
                    raise ValueError(f"y has {Y.shape[1]} outputs, the fitted model has "
                                     f"{self.n_outputs_}")
                self._push_weights()
            try:
                if self.solver == "lbfgs":
                    self._fit_lbfgs(X, Y, w)
                else:
                    self._fit_stochastic(X, Y, w, rs, incremental)
                diverged = ""
            except FloatingPointError:  # the core stopped at a non-finite loss or gradient
                self._pull_weights()  # the weights of the last finite step, as n_iter_ counts
                diverged = (f" (The loss or a gradient was not finite in epoch "
                            f"{self.n_iter_ + 1}.)")
        if diverged or not all(np.isfinite(a).all() for a in self.coefs_ + self.intercepts_):
            # scikit-learn's error and message, so that code catching it works alike
            raise ValueError("Solver produced non-finite parameter weights. The input data "
                             "may contain large values and need to be preprocessed."
                             + diverged) from None
        return self

    def _initialize(self, Y, layer_units, rs):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = Y.shape[1]
        self.n_layers_ = len(layer_units)
        self._fitted_loss = self._loss_kind = self._choose_loss()
        self.out_activation_ = _OUT_ACTIVATION[self._loss_kind]
        # scikit-learn's initialization, drawn from the same stream: Glorot uniform with
        # bound sqrt(6 / (fan_in + fan_out)) (sqrt(2 / ...) for logistic), for the weights and
        # then the biases of each layer.
        coefs, intercepts = [], []
        factor = 2.0 if self.activation == "logistic" else 6.0
        for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            coefs.append(rs.uniform(-bound, bound, (fan_in, fan_out)).astype(self._np_dtype))
            intercepts.append(rs.uniform(-bound, bound, fan_out).astype(self._np_dtype))
        self._seed = self._model_seed(rs)
        self._model = self._build_model(layer_units, self._seed)
        self._model.set_weights(list(zip(coefs, intercepts)))
        self._pull_weights()
        self._optimizer_ready = False
        if self.solver != "lbfgs":
            self.loss_curve_ = []
            self.validation_loss_curve_ = None
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.validation_loss_curve_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _reset_optimizer(self, model):
        """A fresh optimizer (zero state, step 0) at learning_rate_init, as a new fit starts."""
        model.optimizer = None
        model._use_optimizer(self._core_optimizer(self.learning_rate_init))
        self._lr = float(self.learning_rate_init)
        self._optimizer_ready = True

    def _set_lr(self, model, lr):
        """Change the learning rate between epochs. scikit-learn's SGD keeps the velocity
        v = momentum·v − lr·g, the core torch's buffer b = momentum·b + g with the step lr·b;
        they agree when v = −lr·b, so the buffer is rescaled by old_lr / new_lr here."""
        if lr == self._lr:
            return
        if self.solver == "sgd":
            buf = model.optimizer_state.get("momentum_buffer")
            if buf is not None:
                buf *= self._lr / lr
            model._use_optimizer(optimizers.get(model.optimizer, lr / self._scale()))
        self._lr = float(lr)

    def _fit_stochastic(self, X, Y, w, rs, incremental):
        model = self._get_model()
        if not incremental or not getattr(self, "_optimizer_ready", False):
            self._reset_optimizer(model)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        X_val = Y_val = w_val = y_val = None
        if self.early_stopping:
            stratify = Y if (is_classifier(self) and self.n_outputs_ == 1) else None
            arrays = (X, Y) if w is None else (X, Y, w)
            parts = train_test_split(*arrays, random_state=rs,
                                     test_size=self.validation_fraction, stratify=stratify)
            X, X_val, Y, Y_val = parts[:4]
            if w is not None:
                w, w_val = parts[4:]
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            y_val = self._decode(Y_val)
        n = X.shape[0]
        if self.batch_size == "auto":
            batch = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped")
            batch = int(np.clip(self.batch_size, 1, n))
        weighted = w is not None and not np.all(w == w[0])
        alpha = self.alpha
        if w is not None and not weighted:
            if w[0] == 0:
                raise ValueError("all sample weights are zero")
            alpha = self.alpha / w[0]  # equal weights c: the penalty is alpha / (c · batch)
        if weighted and self.dropout and self._loss_kind != "cross_entropy":
            raise NotImplementedError("non-uniform sample_weight with dropout is supported for "
                                      "multiclass classification only")
        Y_train = Y.astype(self._np_dtype, copy=False)
        if not weighted:  # converted once; each epoch visits them in its own order
            X_model, Y_model = model._features(X), model._targets(Y_train, n)
        order = np.arange(n)
        self.n_iter_ = 0
        for _ in range(self.max_iter):
            if self.shuffle:
                order = _sk_shuffle(order, random_state=rs)
            epoch_order = order if self.shuffle else None
            if weighted:
                data_loss, penalty = self._weighted_epoch(model, X, Y_train, w, epoch_order,
                                                          batch)
            else:
                data_loss, penalty = self._epoch(model, X_model, Y_model, epoch_order, batch,
                                                 alpha)
            self.n_iter_ += 1
            self.loss_ = float(data_loss + penalty)
            self.t_ += n
            self.loss_curve_.append(self.loss_)
            if self.verbose:
                print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
            self._update_no_improvement(model, X_val, Y_val, y_val, w_val)
            if self.solver == "sgd" and self.learning_rate == "invscaling":
                self._set_lr(model, self.learning_rate_init / (self.t_ + 1) ** self.power_t)
            if self._no_improvement_count > self.n_iter_no_change:
                what = ("Validation score" if self.early_stopping else "Training loss")
                msg = (f"{what} did not improve more than tol={self.tol:f} for "
                       f"{self.n_iter_no_change} consecutive epochs.")
                if self.solver == "sgd" and self.learning_rate == "adaptive":
                    if self._lr <= 1e-6:
                        if self.verbose:
                            print(msg + " Learning rate too small. Stopping.")
                        break
                    self._set_lr(model, self._lr / 5.0)
                    if self.verbose:
                        print(msg + " Setting learning rate to %f" % self._lr)
                    self._no_improvement_count = 0
                else:
                    if self.verbose:
                        print(msg + " Stopping.")
                    break
            if incremental:
                break
            if self.n_iter_ == self.max_iter:
                warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the "
                              "optimization hasn't converged yet." % self.max_iter,
                              ConvergenceWarning)
        if self.early_stopping and self.restore_best_weights and self._best_weights is not None:
            model.set_weights(self._best_weights)
        self._pull_weights()

    def _sq_norm(self, model):
        return float(sum(np.dot(layer.W.ravel().astype(np.float64),
                                layer.W.ravel().astype(np.float64)) for layer in model.layers))

    def _data_loss_factor(self):
        # scikit-learn's squared error is ((y − p)²).mean() / 2 over samples and outputs.
        return 1.0 / (2.0 * self.n_outputs_) if self._loss_kind == "mse" else 1.0

    def _epoch(self, model, X, Y, order, batch, alpha):
        """One epoch over the rows of (X, Y) in `order` (None: as stored), in at most two core
        calls: the full batches with l2 = alpha / batch and the last partial batch with
        l2 = alpha / its size, so that each step's penalty is scikit-learn's
        alpha·W / (batch's samples). X and Y are in the model's dtype; the shuffled rows are
        gathered by the core batch by batch, never copied as a whole."""
        n = X.shape[0]
        n_batches = n // batch
        n_full = n_batches * batch
        c = self._scale()
        loss_sum = 0.0
        s0 = self._sq_norm(model) if alpha else 0.0
        s1 = s0
        lr = self._lr / (c if self.solver == "sgd" else 1.0)
        if n_full:
            loss_sum += model._train_in_order(X, Y, order, batch, 0, n_batches, lr,
                                              c * alpha / batch)
            s1 = self._sq_norm(model) if alpha else 0.0
        penalty_sum = 0.0
        if alpha:
            # Σ over batches of ||W||² before each step: exact for one full batch, else the
            # full batches' values interpolated linearly between the epoch's start and the
            # last batch (which is exact).
            if n_batches:
                penalty_sum += n_batches * s0 + (s1 - s0) * (n_batches - 1) / 2.0
        rem = n - n_full
        if rem:  # batch n_batches of the epoch holds the last rem rows
            loss_sum += model._train_in_order(X, Y, order, batch, n_batches, 1, lr,
                                              c * alpha / rem)
            if alpha:
                penalty_sum += s1
        return loss_sum / n * self._data_loss_factor(), 0.5 * alpha * penalty_sum / n

    def _weighted_epoch(self, model, X, Y, w, order, batch):
        """One epoch with per-sample weights over the rows of (X, Y, w) in `order` (None: as
        stored), batch by batch: each step's gradient is (Σ w·∂C + alpha·W) / Σ w over the
        batch, as scikit-learn's. Only each batch's rows are copied, never the whole data."""
        n = X.shape[0]
        c = self._scale()
        factor = self._data_loss_factor()
        loss_sum = penalty_sum = 0.0
        for start in range(0, n, batch):
            stop = min(start + batch, n)
            rows = slice(start, stop) if order is None else order[start:stop]
            Xb, Yb, wb = X[rows], Y[rows], w[rows]
            total = float(wb.sum())
            if total == 0:  # scikit-learn divides by zero here; skip the batch instead
                continue
            s = self._sq_norm(model) if self.alpha else 0.0
            penalty_sum += (stop - start) * 0.5 * self.alpha * s / total
            if self._loss_kind == "cross_entropy":
                # Softmax cross-entropy with target rows scaled by w' = w·B / Σw: the core's
                # δ = a·Σy − y becomes w'(a − y), so loss and gradient are exactly weighted.
                scaled = Yb * (wb * (stop - start) / total)[:, None].astype(Y.dtype)
                model.fit(Xb, scaled, epochs=1, batch_size=stop - start,
                          lr=self._lr / (c if self.solver == "sgd" else 1.0), shuffle=False,
                          verbose=0, l2=self.alpha / total)
                loss_sum += _last_loss(model) * (stop - start) * factor
            else:
                loss, grads = self._loss_grad(model, Xb, Yb, wb, penalty=False)
                for g, layer in zip(grads[0], model.layers):
                    g += self.alpha * layer.W / total
                loss_sum += loss * (stop - start)
                self._numpy_step(model, grads)
        return loss_sum / n, penalty_sum / n

    def _loss_grad(self, model, X, Y, w, penalty=True):
        """scikit-learn's loss and gradients (lists dW, db) on (X, Y) with weights w (None: all
        equal), from the core: one forward/backward pass."""
        c = self._scale()
        factor = self._data_loss_factor()
        n = X.shape[0]
        total = float(n if w is None else w.sum())
        if w is None or self._loss_kind == "cross_entropy":
            Yin = Y if w is None else Y * (w * n / total)[:, None].astype(Y.dtype)
            g = model.gradients(X, Yin)
            loss = g["loss"] * factor
            dW = [d.astype(np.float64) / c for d in g["dW"]]
            db = [d.astype(np.float64) / c for d in g["db"]]
        else:
            trace = model._net.trace(X, Y)
            a_out = trace[-1]["a"].astype(np.float64)
            Yd = Y.astype(np.float64)
            if self._loss_kind == "mse":
                per_sample = ((a_out - Yd) ** 2).sum(axis=1)
            else:
                eps = np.finfo(a_out.dtype).eps
                p = np.clip(a_out, eps, 1 - eps)
                per_sample = -(Yd * np.log(p) + (1 - Yd) * np.log(1 - p)).sum(axis=1)
            loss = float(w @ per_sample) / total * factor
            dW, db = [], []
            for i, layer in enumerate(trace):
                delta = layer["delta"].astype(np.float64) * (w / (total * c))[:, None]
                inputs = X if i == 0 else trace[i - 1]["a"]
                dW.append(inputs.astype(np.float64).T @ delta)
                db.append(delta.sum(axis=0))
        if penalty and self.alpha:
            loss += 0.5 * self.alpha * self._sq_norm(model) / total
            for d, layer in zip(dW, model.layers):
                d += self.alpha * layer.W / total
        return loss, (dW, db)

    def _numpy_step(self, model, grads):
        """One optimizer step with the given scikit-learn-scale gradients, applied to the
        core's parameters and optimizer state (torch's rules, as the core's own step)."""
        c = self._scale()
        flat = np.concatenate([np.concatenate([dW.ravel(), db.ravel()])
                               for dW, db in zip(*grads)]) * c
        params = model._net.params
        state = model.optimizer_state
        step = state["step"] + 1
        if self.solver == "sgd":
            lr = self._lr / c
            if self.momentum > 0:
                buf = state["momentum_buffer"]
                buf *= self.momentum
                buf += flat
                update = flat + self.momentum * buf if self.nesterovs_momentum else buf
            else:
                update = flat
            params -= (lr * update).astype(params.dtype)
        else:
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m *= self.beta_1
            m += (1 - self.beta_1) * flat
            v *= self.beta_2
            v += (1 - self.beta_2) * flat * flat
            bias1 = 1 - self.beta_1 ** step
            bias2 = 1 - self.beta_2 ** step
            denom = np.sqrt(v / bias2) + self.epsilon * c
            params -= (self._lr / bias1 * m / denom).astype(params.dtype)
        model._net.optimizer_step = step

    def _update_no_improvement(self, model, X_val, Y_val, y_val, w_val):
        if self.early_stopping:
            a = model.forward(X_val)
            self.validation_loss_curve_.append(self._output_loss(a, Y_val, w_val))
            score = self._score_output(a, y_val, w_val)
            self.validation_scores_.append(score)
            if self.verbose:
                print("Validation score: %f" % score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_weights = model.get_weights()
        else:
            last = self.loss_curve_[-1]
            if last > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if last < self.best_loss_:
                self.best_loss_ = last

    @property
    def _best_weights(self):
        return getattr(self, "_best_weights_store", None)

    @_best_weights.setter
    def _best_weights(self, value):
        self._best_weights_store = value

    def _output_loss(self, a, Y, w):
        """scikit-learn's data loss (no penalty) of outputs a against encoded targets Y."""
        a = a.astype(np.float64)
        Y = Y.astype(np.float64)
        if self._loss_kind == "mse":
            per = ((a - Y) ** 2).sum(axis=1) * self._data_loss_factor()
        else:
            eps = np.finfo(a.dtype).eps
            p = np.clip(a, eps, 1 - eps)
            if self._loss_kind == "cross_entropy":
                per = -(Y * np.log(p)).sum(axis=1)
            else:
                per = -(Y * np.log(p) + (1 - Y) * np.log(1 - p)).sum(axis=1)
        return float(np.average(per, weights=w))

    def _fit_lbfgs(self, X, Y, w):
        import scipy.optimize

        model = self._get_model()
        Y = Y.astype(self._np_dtype, copy=False)
        shapes = [(layer.W.shape, layer.b.shape) for layer in model.layers]

        def unpack(theta):
            weights, pos = [], 0
            for (ws, bs) in shapes:
                weights.append([theta[pos:pos + np.prod(ws)].reshape(ws)])
                pos += int(np.prod(ws))
            for i, (_, bs) in enumerate(shapes):
                weights[i].append(theta[pos:pos + bs[0]])
                pos += bs[0]
            return [tuple(p) for p in weights]

        def fun(theta):
            model.set_weights(unpack(theta))
            loss, (dW, db) = self._loss_grad(model, X, Y, w)
            return loss, np.concatenate([d.ravel() for d in dW] + [d.ravel() for d in db])

        theta0 = np.concatenate([layer.W.ravel() for layer in model.layers]
                                + [layer.b.ravel() for layer in model.layers]).astype(np.float64)
        iprint = 1 if self.verbose else -1
        options = {"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol}
        if iprint > 0:
            options["disp"] = True
        res = scipy.optimize.minimize(fun, theta0, method="L-BFGS-B", jac=True,
                                      options=options)
        if res.status != 0:
            warnings.warn(f"lbfgs failed to converge after {res.nit} iteration(s) "
                          f"(status={res.status}): {res.message}. Increase the number of "
                          f"iterations (max_iter) or scale the data.", ConvergenceWarning)
        self.n_iter_ = min(int(res.nit), self.max_iter)
        self.loss_ = float(res.fun)
        model.set_weights(unpack(res.x))
        self._pull_weights()

    # ----- inference ---------------------------------------------------------------------
    def _forward(self, X):
        check_is_fitted(self, "coefs_")
        X = self._check_X(X, reset=False)
        with _Threads(self.n_threads):
            return self._push_weights().forward(X)

    @property
    def _estimator_type_tag(self):  # pragma: no cover
        return None

    def _more_tags(self):  # scikit-learn < 1.6
        return {"multilabel": True} if is_classifier(self) else {}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _last_loss(model):
    loss = model.history["loss"][-1]
    model.history = History()  # the estimator keeps its own curves; keep this one small
    return loss


def _densify(X, dtype):
    if hasattr(X, "toarray"):
        X = X.toarray()
    return np.ascontiguousarray(X, dtype=dtype)


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier trained by the chainrule core.

    Parameters, defaults and fitted attributes are scikit-learn's MLPClassifier's; see
    docs/sklearn.md. Beyond them:

    dtype : "float32" (default) or "float64", the precision of the weights and the arithmetic.
    n_threads : threads for the core during fit and predict (None: chainrule's setting).
    dropout : probability of dropping each hidden unit while training (inverted dropout).
    restore_best_weights : with early_stopping, end with the weights of the best validation
        score (True, as scikit-learn) or keep the last ones (False).
    validation_loss_curve_ : with early_stopping, the validation loss after each epoch, next
        to validation_scores_.
    fit(X, y, sample_weight=...), to_model() -> chainrule.Sequential.
    """

    def _choose_loss(self):
        if self._label_binarizer.y_type_ == "multiclass":
            return "cross_entropy"
        return "binary_cross_entropy"

    def _validate_input(self, X, y, incremental, reset):
        X, y = self._checked_arrays(X, y, reset)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(f"warm_start can only be used where `y` has the same "
                                     f"classes as in the previous call to fit. Previously got "
                                     f"{self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` "
                                 f"has {self.classes_}. 'y' has {classes}.")
        Y = self._label_binarizer.transform(y).astype(self._np_dtype)
        return X, Y

    def _decode(self, Y):
        return self._label_binarizer.inverse_transform(Y)

    def _score_output(self, a, y, w):
        if not np.isfinite(a).all():
            return np.nan
        return accuracy_score(y, self._labels_from_output(a), sample_weight=w)

    def _labels_from_output(self, a):
        if self.n_outputs_ == 1:
            a = a.ravel()
        return self._label_binarizer.inverse_transform(a)

    def fit(self, X, y, sample_weight=None):
        """Fit the model to X and y (class labels, or a 0/1 indicator matrix for multilabel);
        sample_weight: per-sample weights (see docs/sklearn.md for what is exact)."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(_stochastic_solver)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over X, y; `classes` (all labels) is required on the first call."""
        first = not hasattr(self, "classes_")
        if first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if classes is not None and not first:
            if not np.array_equal(np.unique(classes), self.classes_):
                raise ValueError(f"`classes={classes!r}` is not the same as on last call to "
                                 f"partial_fit, was: {self.classes_!r}")
        if first:
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(np.unique(classes))
            self.classes_ = self._label_binarizer.classes_
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X):
        """Class labels (an indicator matrix for multilabel targets)."""
        return self._labels_from_output(self._forward(X))

    def predict_proba(self, X):
        """Class probabilities, columns in the order of classes_."""
        a = self._forward(X)
        if self.n_outputs_ == 1:
            a = a.ravel()
            return np.vstack([1 - a, a]).T
        return a

    def predict_log_proba(self, X):
        """log(predict_proba(X))."""
        p = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(p, out=p)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor (squared error) trained by the chainrule core.

    Parameters, defaults and fitted attributes are scikit-learn's MLPRegressor's (loss is
    "squared_error" only); see MLPClassifier and docs/sklearn.md for the additions.
    """

    # scikit-learn's signature: `loss` first, then the base class's parameters, all spelled
    # out because get_params reads them from __init__.
    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dtype="float32", n_threads=None, dropout=0.0, restore_best_weights=True):
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state,
            tol=tol, verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun, dtype=dtype,
            n_threads=n_threads, dropout=dropout, restore_best_weights=restore_best_weights)
        self.loss = loss

    def _check_params(self):
        if self.loss == "poisson":
            raise NotImplementedError(
                "MLPRegressor(loss='poisson') is not available in chainrule: the core has no "
                "exponential output for the Poisson loss. Use loss='squared_error', or "
                "scikit-learn's MLPRegressor.")
        if self.loss != "squared_error":
            raise ValueError(f"The 'loss' parameter of MLPRegressor must be a str among "
                             f"{{'squared_error', 'poisson'}}. Got {self.loss!r} instead.")
        return super()._check_params()

    def _choose_loss(self):
        return "mse"

    def _validate_input(self, X, y, incremental, reset):
        X, y = self._checked_arrays(X, y, reset, y_numeric=True)
        self._fitted_loss = self._loss_kind = "mse"
        return X, np.asarray(y, dtype=self._np_dtype)

    def _decode(self, Y):
        return Y.ravel() if Y.shape[1] == 1 else Y

    def _score_output(self, a, y, w):
        if not np.isfinite(a).all():
            return np.nan
        return r2_score(y, a.ravel() if a.shape[1] == 1 else a, sample_weight=w)

    def fit(self, X, y, sample_weight=None):
        """Fit the model to X and y (one or several real-valued targets)."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(_stochastic_solver)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over X, y."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X):
        """Predicted values, shape (n,) for one target, (n, n_outputs) for several."""
        a = self._forward(X)
        return a.ravel() if a.shape[1] == 1 else a


def _data_conversion_warning():
    from sklearn.exceptions import DataConversionWarning
    return DataConversionWarning
