"""Open the box: the chain rule's quantities layer by layer, a public gradient check, and a
step-by-step explanation for a chain of single neurons.

The names follow the README's math section. For one layer and a batch of n samples (one per row):

    z = a_prev·W + b        a = σ(z)        delta = ∂C_k/∂z = ∂C_k/∂a ⊙ σ'(z)   (per sample k)
    dW = a_prevᵀ·delta / n  db = mean of delta over the batch      dx = delta·Wᵀ of the first layer

so dW and db are the gradients of the batch cost C = (1/n) Σ_k C_k, while delta, da and dx are
per sample (row k holds ∂C_k/∂·, not divided by n).

None of these functions updates the model or touches its gradient buffers (layer.dW, layer.db).
"""

import sys

import numpy as np

__all__ = ["backprop", "explain", "gradcheck", "GradcheckResult"]


# ----- helpers ----------------------------------------------------------------------------------
def _inputs(model, X, y):
    X = model._features(X)
    return X, model._targets(y, X.shape[0])


def _float64_copy(model, first=0):
    """A float64 Sequential with the model's layers first.. (sizes, activations, loss, leaky slope
    and weights), without dropout: what gradcheck and explain differentiate."""
    from .layers import Dense
    from .model import Sequential

    layers = [Dense(layer.n_in, layer.n_out, activation=layer.activation)
              for layer in model.layers[first:]]
    copy = Sequential(layers, loss=model.loss, dtype="float64", seed=0,
                      leaky_slope=model._net.leaky_slope)
    copy.set_weights([(np.asarray(layer.W, np.float64), np.asarray(layer.b, np.float64))
                      for layer in model.layers[first:]])
    return copy


def _output_da(model, a, Y):
    """∂C_k/∂a at the output, per sample, where it is formed: mse only (C_k = Σ_j (a_j − y_j)²).
    Softmax and sigmoid outputs fused with their cross-entropy go straight to δ = a − y."""
    if model.loss != "mse":
        return None
    return 2.0 * (a - np.asarray(Y, dtype=a.dtype).reshape(a.shape))


# ----- backprop -----------------------------------------------------------------------------------
def backprop(model, X, y):
    """One forward and backward pass over (X, y) without any update; the chain rule's quantities.

    Returns {"loss": the batch's mean cost C, "layers": [...], "dx": ∂C_k/∂x per sample}, where
    layers[i] is a dict of numpy arrays for layer i (n = number of samples):

      a_prev  (n, in)   the layer's input (X for the first layer)
      z       (n, out)  a_prev·W + b
      a       (n, out)  σ(z)
      da      (n, out)  ∂C_k/∂a per sample: δ_next·W_nextᵀ for a hidden layer, 2(a − y) at an
                        mse output; None at a softmax/sigmoid output fused with cross-entropy
      delta   (n, out)  δ = ∂C_k/∂z per sample (not divided by n)
      dW      (in, out) ∂C/∂W = a_prevᵀ·delta / n, the batch mean
      db      (out,)    ∂C/∂b = mean of delta over the batch

    Arrays have the model's dtype. Dropout is off (as in evaluate). dW and db equal what
    model.gradients(X, y) computes, but the model's own gradient buffers are left untouched.
    """
    Xc, Y = _inputs(model, X, y)
    n = Xc.shape[0]
    trace = model._net.trace(Xc, Y)
    loss = model.evaluate(Xc, Y)["loss"]
    layers = []
    a_prev = np.array(Xc)
    for i, (layer, t) in enumerate(zip(model.layers, trace)):
        delta = np.asarray(t["delta"])
        layers.append({"a_prev": a_prev, "z": np.asarray(t["z"]), "a": np.asarray(t["a"]),
                       "da": None, "delta": delta,
                       "dW": a_prev.T @ delta / n, "db": delta.mean(axis=0)})
        a_prev = layers[-1]["a"]
    for i in range(len(layers) - 1):
        layers[i]["da"] = layers[i + 1]["delta"] @ np.asarray(model.layers[i + 1].W).T
    layers[-1]["da"] = _output_da(model, layers[-1]["a"], Y)
    dx = layers[0]["delta"] @ np.asarray(model.layers[0].W).T
    return {"loss": loss, "layers": layers, "dx": dx}


# ----- gradcheck ----------------------------------------------------------------------------------
class GradcheckResult:
    """What gradcheck found. errors[i] is layer i's largest relative error over the parameters
    checked, passed is True when every error is at most tol; bool(result) is result.passed.
    layers[i] holds the details: checked, params, error, worst (("W", (r, c)) or ("b", (c,))),
    analytic and numeric (at the worst entry), passed, and vanishing (every gradient checked
    was below floor·tol, too small to tell from 0: the layer passes but was hardly tested)."""

    def __init__(self, layers, tol, eps, near_kinks, floor):
        self.layers = layers
        self.tol = tol
        self.floor = floor
        self.eps = eps
        self.near_kinks = near_kinks
        self.errors = [d["error"] for d in layers]
        self.max_error = max(self.errors)
        self.passed = all(d["passed"] for d in layers)

    def __bool__(self):
        return self.passed

    def __repr__(self):
        return (f"GradcheckResult(passed={self.passed}, max_error={self.max_error:.2e}, "
                f"tol={self.tol:g})")

    def __str__(self):
        rows = [f"{'layer':<7}{'checked':>15}  {'max rel. error':>14}  result"]
        for d in self.layers:
            checked = f"{d['checked']}/{d['params']}"
            rows.append(f"{d['layer']:<7}{checked:>15}  {d['error']:>14.2e}  "
                        f"{'ok' if d['passed'] else 'FAIL'}")
        verdict = "passed" if self.passed else "FAILED"
        rows.append(f"gradcheck {verdict}: max relative error {self.max_error:.2e} "
                    f"(tolerance {self.tol:g}, central differences, step {self.eps:g}, float64)")
        for d in self.layers:
            if d.get("vanishing"):
                rows.append(f"note: every gradient checked in layer {d['layer']} is below "
                            f"{self.floor * self.tol:.0e}, so the check can not tell it from 0 "
                            f"(dead or saturated units?)")
        if self.near_kinks:
            rows.append(f"note: {self.near_kinks} ReLU pre-activations lie within 1e3·step of "
                        f"the kink at z = 0, where finite differences are not exact")
        return "\n".join(rows)


def _central_difference(values, idx, f, eps):
    """(f(v + eps) − f(v − eps)) / 2eps for the array entry v = values[idx], restored after."""
    old = values[idx]
    values[idx] = old + eps
    up = f()
    values[idx] = old - eps
    down = f()
    values[idx] = old
    return (up - down) / (2 * eps)


def _relative_error(analytic, numeric, floor):
    return np.abs(analytic - numeric) / np.maximum(np.abs(analytic) + np.abs(numeric), floor)


def gradcheck(model, X, y, *, eps=1e-5, tol=1e-5, max_checks=1000, floor=1e-4, seed=0):
    """Compare backpropagation's ∂C/∂W and ∂C/∂b with central differences of the batch cost,
    (C(θ + eps) − C(θ − eps)) / 2·eps, for every parameter of every layer.

    The check runs in float64 on a copy of the model (same sizes, activations, loss and weights;
    no dropout), so a float32 model is checked without float32 rounding drowning the
    differences. Layers with more than max_checks parameters (None: no limit) are checked on a
    random subset of that size (seeded by seed), some of them biases.

    The relative error of one parameter is |analytic − numeric| / max(|analytic| + |numeric|,
    floor): gradients much smaller than floor are compared absolutely, since the differences'
    rounding noise (about 1e-11 for a cost near 1) would otherwise dominate. The default step
    balances that noise against the differences' truncation error (about eps²); a wrong
    derivative shows up as an error of 1e-3 or more, far above tol. Returns a
    GradcheckResult: errors (max relative error per layer), passed, and a printable table.
    """
    from ._validation import positive_float, positive_int

    eps, tol, floor = (positive_float(value, name)
                       for value, name in ((eps, "eps"), (tol, "tol"), (floor, "floor")))
    if max_checks is not None:
        max_checks = positive_int(max_checks, "max_checks")
    copy = _float64_copy(model)
    Xc, Y = _inputs(copy, X, y)
    grads = copy.gradients(Xc, Y)
    rng = np.random.default_rng(seed)

    def cost():
        return copy.evaluate(Xc, Y)["loss"]

    def check(values, analytic, indices):
        errors, numeric = [], []
        for idx in indices:
            numeric.append(_central_difference(values, idx, cost, eps))
        numeric = np.array(numeric)
        exact = np.array([analytic[idx] for idx in indices])
        errors = _relative_error(exact, numeric, floor)
        return errors, exact, numeric

    results = []
    for i, layer in enumerate(copy.layers):
        n_params = layer.W.size + layer.b.size
        w_idx = list(np.ndindex(layer.W.shape))
        b_idx = list(np.ndindex(layer.b.shape))
        if max_checks is not None and n_params > max_checks:
            n_b = min(len(b_idx), max(1, max_checks // 10)) if max_checks > 1 else 0
            n_w = min(len(w_idx), max_checks - n_b)
            w_idx = [w_idx[k] for k in sorted(rng.choice(len(w_idx), n_w, replace=False))]
            b_idx = [b_idx[k] for k in sorted(rng.choice(len(b_idx), n_b, replace=False))]
        ew, aw, nw = check(layer.W, grads["dW"][i], w_idx)
        eb, ab, nb = check(layer.b, grads["db"][i], b_idx)
        errors = np.concatenate([ew, eb])
        where = [("W", idx) for idx in w_idx] + [("b", idx) for idx in b_idx]
        worst = int(np.argmax(errors))
        error = float(errors[worst])
        largest = max(np.abs(np.concatenate([aw, ab, nw, nb])).max(initial=0.0), 0.0)
        results.append({"layer": i, "checked": len(where), "params": n_params, "error": error,
                        "worst": where[worst],
                        "analytic": float(np.concatenate([aw, ab])[worst]),
                        "numeric": float(np.concatenate([nw, nb])[worst]),
                        "passed": error <= tol,
                        # all below what the check can tell from 0: it passes, but tests little
                        "vanishing": bool(largest < floor * tol)})
    near_kinks = 0
    for layer, t in zip(copy.layers, copy._net.trace(Xc, Y)):
        if layer.activation in ("relu", "leaky_relu"):
            near_kinks += int(np.count_nonzero(np.abs(t["z"]) < 1e3 * eps))
    return GradcheckResult(results, tol, eps, near_kinks, floor)


# ----- explain ------------------------------------------------------------------------------------
_SIGMA_PRIME = {"identity": "1", "sigmoid": "σ(z)(1 − σ(z))", "tanh": "1 − tanh²(z)",
                "relu": "1 if z > 0 else 0", "leaky_relu": "1 if z > 0 else slope"}


def _fmt(value):
    return f"{value: .8f}"


class _Table:
    def __init__(self, out):
        self.out = out

    def header(self, text):
        print(text, file=self.out)

    def row(self, name, value, numeric=None):
        line = f"  {name:<44}{_fmt(value)}"
        if numeric is not None:
            line += f"  {_fmt(numeric)}"
        print(line.rstrip(), file=self.out)


def explain(model, X, y, *, sample=0, eps=1e-6, file=None):
    """Print the chain rule for a chain of single neurons (every layer Dense(1, 1)), mse loss.

    For sample `sample` of (X, y) and for each neuron, from the output back to the input, it
    prints the factors ∂z/∂w = a_prev, ∂a/∂z = σ'(z) and ∂C/∂a (2(a − y) at the output), their
    product ∂C/∂w, the bias term ∂C/∂b (∂z/∂b = 1), and the recursion ∂C/∂a_prev = w·σ'(z)·∂C/∂a
    to the neuron before. Beside each value stands its central finite difference, computed by
    nudging the model itself (in float64) and re-running it. When X has several samples it then
    prints the batch gradient ∂C/∂w = (1/n) Σ_k ∂C_k/∂w beside the difference of the mean cost.
    Writes to file (default sys.stdout); returns None.
    """
    out = sys.stdout if file is None else file
    if any((layer.n_in, layer.n_out) != (1, 1) for layer in model.layers):
        raise ValueError("explain works on a chain of single neurons: every layer must be "
                         "Dense(1, 1); use chainrule.backprop(model, X, y) for wider layers")
    if model.loss != "mse":
        raise ValueError("explain shows ∂C/∂a = 2(a − y), the squared error's derivative; "
                         f"this model's loss is {model.loss!r} (use loss='mse')")
    copy = _float64_copy(model)
    Xc, Y = _inputs(copy, X, y)
    n, L = Xc.shape[0], len(copy.layers)
    if not -n <= sample < n:
        raise IndexError(f"sample {sample} is out of range for {n} samples")
    sample %= n
    table = _Table(out)

    def nudged(values, idx, f):
        return _central_difference(values, idx, f, eps)

    def traced(x, t):
        """f() reading layer quantities of the copy for inputs x and targets t."""
        return lambda l, key: copy._net.trace(x, t)[l][key][:, 0]

    # A one-neuron identity model with the same loss: C as a function of a, for ∂C/∂a.
    from .layers import Dense
    from .model import Sequential
    cost_of_a = Sequential([Dense(1, 1, activation="identity")], loss="mse", dtype="float64")
    cost_of_a.set_weights([([[1.0]], [0.0])])
    tails = [_float64_copy(copy, l) for l in range(L)]  # tails[l]: layers l.., C of a_(l)

    def explain_sample(k):
        x, t = Xc[k:k + 1], Y[k:k + 1]
        bp = backprop(copy, x, t)["layers"]
        value = traced(x, t)
        cost = lambda: copy.evaluate(x, t)["loss"]  # noqa: E731
        a_out = np.array([[bp[-1]["a"][0, 0]]])
        table.header(f"sample {k}: x = {x[0, 0]:.6g}, y = {t[0, 0]:.6g}, "
                     f"C_{k} = (a{L} − y)² = {(a_out[0, 0] - t[0, 0]) ** 2:.8f}")
        table.header(f"  {'':<44}{'chain rule':>11}  {'finite diff':>11}")
        for l in reversed(range(L)):
            i, layer, d = l + 1, copy.layers[l], bp[l]
            act = layer.activation
            w, b = layer.W[0, 0], layer.b[0]
            a_prev, z, a = d["a_prev"][0, 0], d["z"][0, 0], d["a"][0, 0]
            prev = "x" if l == 0 else f"a{l}"
            sp = _sigma_prime(act, z, a, copy._net.leaky_slope)
            kind = "output" if l == L - 1 else "hidden"
            table.header(f"neuron {i} ({kind}, {act}): z{i} = w{i}·{prev} + b{i}, "
                         f"a{i} = {act}(z{i})")
            table.row(f"w{i}", w)
            table.row(f"b{i}", b)
            table.row(f"z{i}", z)
            table.row(f"a{i}", a)
            table.row(f"∂z{i}/∂w{i} = {prev}", a_prev,
                      nudged(layer.W, (0, 0), lambda: value(l, "z")[0]))
            table.row(f"∂a{i}/∂z{i} = σ'(z{i}) = {_SIGMA_PRIME[act]}", sp,
                      nudged(layer.b, 0, lambda: value(l, "a")[0]))
            if l == L - 1:
                table.row(f"∂C/∂a{i} = 2(a{i} − y)", d["da"][0, 0],
                          nudged(a_out, (0, 0), lambda: cost_of_a.evaluate(a_out, t)["loss"]))
            else:
                table.row(f"∂C/∂a{i} (from neuron {i + 1}, above)", d["da"][0, 0],
                          _tail_derivative(tails[l + 1], d["a"][0:1], t, nudged))
            table.row(f"∂C/∂w{i} = {prev}·σ'(z{i})·∂C/∂a{i}", a_prev * sp * d["da"][0, 0],
                      nudged(layer.W, (0, 0), cost))
            table.row(f"∂C/∂b{i} = 1·σ'(z{i})·∂C/∂a{i}", sp * d["da"][0, 0],
                      nudged(layer.b, 0, cost))
            target = f"∂C/∂{prev}" if l == 0 else f"∂C/∂a{l}"
            table.row(f"{target} = w{i}·σ'(z{i})·∂C/∂a{i}", w * sp * d["da"][0, 0],
                      _tail_derivative(tails[l], d["a_prev"][0:1], t, nudged))

    print(f"chain of {L} single neuron{'s' if L > 1 else ''}, cost C = (a{L} − y)²; "
          f"layer by layer from the output back", file=out)
    explain_sample(sample)
    if n > 1:
        bp = backprop(copy, Xc, Y)
        cost = lambda: copy.evaluate(Xc, Y)["loss"]  # noqa: E731
        table.header(f"averaged over the {n} samples: ∂C/∂w = (1/n) Σ_k ∂C_k/∂w, "
                     f"C = (1/n) Σ_k C_k = {bp['loss']:.8f}")
        table.header(f"  {'':<44}{'chain rule':>11}  {'finite diff':>11}")
        for l in reversed(range(L)):
            i, layer, d = l + 1, copy.layers[l], bp["layers"][l]
            per_w = d["a_prev"][:, 0] * d["delta"][:, 0]
            per_b = d["delta"][:, 0]
            if n <= 6:
                table.header(f"  ∂C_k/∂w{i}, k = 0..{n - 1}: "
                             + ", ".join(f"{v:.6f}" for v in per_w))
            table.row(f"∂C/∂w{i} = (1/{n}) Σ_k ∂C_k/∂w{i}", per_w.mean(),
                      nudged(layer.W, (0, 0), cost))
            if n <= 6:
                table.header(f"  ∂C_k/∂b{i}, k = 0..{n - 1}: "
                             + ", ".join(f"{v:.6f}" for v in per_b))
            table.row(f"∂C/∂b{i} = (1/{n}) Σ_k ∂C_k/∂b{i}", per_b.mean(),
                      nudged(layer.b, 0, cost))


def _tail_derivative(tail, a, t, nudged):
    """∂C/∂a for the network `tail` fed a (one sample), by central differences."""
    a = np.array(a, dtype=np.float64)
    return nudged(a, (0, 0), lambda: tail.evaluate(a, t)["loss"])


def _sigma_prime(activation, z, a, slope):
    if activation == "identity":
        return 1.0
    if activation == "sigmoid":
        return a * (1.0 - a)
    if activation == "tanh":
        return 1.0 - a * a
    if activation == "relu":
        return 1.0 if z > 0 else 0.0
    if activation == "leaky_relu":
        return 1.0 if z > 0 else slope
    raise ValueError(f"explain has no σ' for activation {activation!r}")
