"""chainrule.backprop, gradcheck and explain: the chain rule's quantities, checked."""

import io
import re

import numpy as np
import pytest

import chainrule as cr
from chainrule.model import Sequential

LOSSES = [
    ("mse", "tanh", lambda rng, n: rng.normal(size=(n, 3))),
    ("cross_entropy", None, lambda rng, n: rng.integers(0, 3, size=n)),
    ("binary_cross_entropy", None, lambda rng, n: (rng.random((n, 3)) > 0.5).astype(float)),
]


def net(loss, output, dtype="float64", hidden="tanh", seed=0):
    return cr.Sequential([cr.Dense(4, 5, activation=hidden), cr.Dense(5, 6, activation="sigmoid"),
                          cr.Dense(6, 3, activation=output)], loss=loss, dtype=dtype, seed=seed)


@pytest.mark.parametrize("loss, output, make_y", LOSSES, ids=[c[0] for c in LOSSES])
def test_backprop_matches_the_core_gradients_and_touches_nothing(loss, output, make_y):
    rng = np.random.default_rng(0)
    model = net(loss, output)
    X, y = rng.normal(size=(7, 4)), make_y(rng, 7)
    weights = model.get_weights()
    model.gradients(X[:2], y[:2])  # leave something in the gradient buffers
    buffers = [(layer.dW.copy(), layer.db.copy()) for layer in model.layers]
    bp = cr.backprop(model, X, y)
    for layer, (dW, db), (W, b) in zip(model.layers, buffers, weights):
        np.testing.assert_array_equal(layer.dW, dW)
        np.testing.assert_array_equal(layer.db, db)
        np.testing.assert_array_equal(layer.W, W)
        np.testing.assert_array_equal(layer.b, b)
    g = model.gradients(X, y)
    assert np.isclose(bp["loss"], g["loss"], rtol=1e-12)
    for i, d in enumerate(bp["layers"]):
        np.testing.assert_allclose(d["dW"], g["dW"][i], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(d["db"], g["db"][i], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(bp["dx"], g["dx"], rtol=1e-10, atol=1e-14)


def test_backprop_of_an_exploding_model_leaves_the_gradients_alone():
    """Where a learner looks inside a model that is blowing up: δ is inf, and the gradient
    buffers must not turn into NaN (the trace once added 0·δ to them)."""
    model = Sequential([cr.Dense(2, 3, activation="identity"), cr.Dense(3, 1)], loss="mse",
                       dtype="float64")
    X, y = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([1.0, 2.0])
    model.gradients(X, y)
    before = [(layer.dW.copy(), layer.db.copy()) for layer in model.layers]
    model.set_weights([(np.full((2, 3), 1e200), np.zeros(3)), (np.full((3, 1), 1e200), np.zeros(1))])
    result = cr.backprop(model, X, y)
    assert not np.isfinite(result["layers"][-1]["delta"]).all()
    for layer, (dW, db) in zip(model.layers, before):
        np.testing.assert_array_equal(layer.dW, dW)
        np.testing.assert_array_equal(layer.db, db)


def test_backprop_quantities_follow_the_math_section():
    rng = np.random.default_rng(1)
    model = net("mse", "sigmoid")
    X, Y = rng.normal(size=(6, 4)), rng.random((6, 3))
    layers = cr.backprop(model, X, Y)["layers"]
    assert [sorted(d) for d in layers] == [["a", "a_prev", "dW", "da", "db", "delta", "z"]] * 3
    np.testing.assert_array_equal(layers[0]["a_prev"], X)
    for d, layer in zip(layers, model.layers):
        n = len(X)
        assert d["z"].shape == d["a"].shape == d["delta"].shape == (n, layer.n_out)
        np.testing.assert_allclose(d["z"], d["a_prev"] @ layer.W + layer.b, rtol=1e-12)
        np.testing.assert_allclose(d["dW"], d["a_prev"].T @ d["delta"] / n, rtol=1e-12)
        np.testing.assert_allclose(d["db"], d["delta"].mean(axis=0), rtol=1e-12)
    out = layers[-1]
    np.testing.assert_allclose(out["da"], 2 * (out["a"] - Y), rtol=1e-12)  # per sample, no 1/n
    np.testing.assert_allclose(out["delta"], out["da"] * out["a"] * (1 - out["a"]), rtol=1e-12)
    for d, nxt, W in zip(layers, layers[1:], [layer.W for layer in model.layers[1:]]):
        np.testing.assert_allclose(d["da"], nxt["delta"] @ W.T, rtol=1e-12)
    sig = layers[1]
    np.testing.assert_allclose(sig["delta"], sig["da"] * sig["a"] * (1 - sig["a"]), rtol=1e-12)
    tanh = layers[0]
    np.testing.assert_allclose(tanh["delta"], tanh["da"] * (1 - tanh["a"] ** 2), rtol=1e-12)


def test_backprop_fused_output_has_no_da_and_keeps_the_dtype():
    rng = np.random.default_rng(2)
    model = net("cross_entropy", None, dtype="float32")
    X, y = rng.normal(size=(5, 4)), np.array([0, 1, 2, 1, 0])
    bp = cr.backprop(model, X, y)
    assert bp["layers"][-1]["da"] is None
    onehot = np.eye(3)[y]
    np.testing.assert_allclose(bp["layers"][-1]["delta"], bp["layers"][-1]["a"] - onehot,
                               atol=1e-6)  # softmax + cross-entropy: δ = a − y
    assert all(d[k].dtype == np.float32 for d in bp["layers"] for k in ("z", "a", "delta", "dW"))


@pytest.mark.parametrize("loss, output, make_y", LOSSES, ids=[c[0] for c in LOSSES])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gradcheck_passes(loss, output, make_y, dtype):
    rng = np.random.default_rng(3)
    model = net(loss, output, dtype=dtype)
    result = cr.gradcheck(model, rng.normal(size=(8, 4)), make_y(rng, 8))
    assert result.passed and bool(result)
    assert len(result.errors) == 3 and max(result.errors) <= 1e-5
    assert [d["checked"] for d in result.layers] == [25, 36, 21]
    text = str(result)
    assert "gradcheck passed" in text and text.count(" ok") == 3


def test_gradcheck_refuses_settings_that_check_nothing():
    rng = np.random.default_rng(3)
    model = net("mse", "tanh")
    X, y = rng.normal(size=(4, 4)), rng.normal(size=(4, 3))
    for option, value in (("eps", 0.0), ("tol", -1.0), ("floor", 0.0)):
        with pytest.raises(ValueError, match=option):
            cr.gradcheck(model, X, y, **{option: value})
    with pytest.raises(ValueError, match="max_checks"):
        cr.gradcheck(model, X, y, max_checks=0)
    one = cr.gradcheck(model, X, y, max_checks=1)  # one weight per layer, not a bias
    assert [d["checked"] for d in one.layers] == [1, 1, 1]
    assert all(d["worst"][0] == "W" for d in one.layers)


def test_gradcheck_says_when_a_layer_had_nothing_to_compare():
    model = Sequential([cr.Dense(4, 5, activation="relu"), cr.Dense(5, 3)], dtype="float64")
    W2 = np.random.default_rng(0).normal(size=(5, 3))
    model.set_weights([(np.full((4, 5), -1.0), np.full(5, -10.0)), (W2, np.zeros(3))])  # dead
    result = cr.gradcheck(model, np.random.default_rng(1).normal(size=(6, 4)), np.zeros(6))
    assert result.passed and [d["vanishing"] for d in result.layers] == [True, False]
    assert "every gradient checked in layer 0 is below" in str(result)


def test_gradcheck_catches_a_wrong_gradient(monkeypatch):
    rng = np.random.default_rng(4)
    model = net("mse", "tanh")
    real = Sequential.gradients

    def broken(self, X, y):
        g = real(self, X, y)
        g["dW"][1] = g["dW"][1] * 1.01  # a 1% error in one layer
        return g

    monkeypatch.setattr(Sequential, "gradients", broken)
    result = cr.gradcheck(model, rng.normal(size=(6, 4)), rng.normal(size=(6, 3)))
    assert not result.passed
    assert [d["passed"] for d in result.layers] == [True, False, True]
    assert result.layers[1]["worst"][0] == "W" and result.errors[1] > 1e-3
    assert "FAIL" in str(result) and "gradcheck FAILED" in str(result)


def test_gradcheck_checks_a_random_subset_of_a_large_layer():
    rng = np.random.default_rng(5)
    model = cr.Sequential([cr.Dense(100, 50, activation="sigmoid"), cr.Dense(50, 4)],
                          loss="cross_entropy", seed=0)
    X, y = rng.normal(size=(4, 100)), rng.integers(0, 4, size=4)
    result = cr.gradcheck(model, X, y, max_checks=60, seed=1)
    assert [d["checked"] for d in result.layers] == [60, 60]
    assert [d["params"] for d in result.layers] == [5050, 204]
    assert result.passed
    again = cr.gradcheck(model, X, y, max_checks=60, seed=1)
    assert again.errors == result.errors  # the subset is seeded


def test_gradcheck_leaves_the_model_alone():
    rng = np.random.default_rng(6)
    model = net("mse", "tanh", dtype="float32")
    before = model.get_weights()
    cr.gradcheck(model, rng.normal(size=(3, 4)), rng.normal(size=(3, 3)))
    for (W, b), layer in zip(before, model.layers):
        np.testing.assert_array_equal(layer.W, W)
        np.testing.assert_array_equal(layer.b, b)


def chain(activations, dtype="float64"):
    model = cr.Sequential([cr.Dense(1, 1, activation=a) for a in activations], loss="mse",
                          dtype=dtype)
    pairs = zip([0.7, -1.2, 0.9], [-0.3, 0.4, 0.1])
    model.set_weights([([[w]], [b]) for (w, b), _ in zip(pairs, activations)])
    return model


ROW = re.compile(r"^  (\S.*?)\s+(-?\d+\.\d{8})\s+(-?\d+\.\d{8})$")


def explained(model, X, y, **kwargs):
    out = io.StringIO()
    assert cr.explain(model, X, y, file=out, **kwargs) is None
    return out.getvalue()


@pytest.mark.parametrize("activations", [["sigmoid", "sigmoid"], ["tanh", "relu", "identity"],
                                         ["leaky_relu", "sigmoid", "tanh"]])
def test_explain_chain_rule_column_matches_finite_differences(activations):
    text = explained(chain(activations, dtype="float32"), [[0.9], [0.2], [-0.5]],
                     [0.25, 0.8, 0.1])
    rows = [ROW.match(line) for line in text.splitlines()]
    rows = [(m.group(1), float(m.group(2)), float(m.group(3))) for m in rows if m]
    L = len(activations)
    assert len(rows) == 6 * L + 2 * L  # 6 compared factors per neuron, 2 averages per neuron
    for name, exact, numeric in rows:
        assert abs(exact - numeric) <= 2e-8, name
    names = [name for name, _, _ in rows]
    assert f"∂C/∂a{L} = 2(a{L} − y)" in names
    assert "∂C/∂x = w1·σ'(z1)·∂C/∂a1" in names
    assert f"∂C/∂w1 = (1/3) Σ_k ∂C_k/∂w1" in names
    assert "averaged over the 3 samples" in text and "sample 0:" in text


def test_explain_products_equal_the_core_gradients():
    model = chain(["sigmoid", "sigmoid"])
    text = explained(model, [[0.2], [0.9]], [0.8, 0.25], sample=1)
    assert "sample 1: x = 0.9, y = 0.25" in text
    single = model.gradients([[0.9]], [0.25])
    for i, name in ((1, "∂C/∂w2 = a1·σ'(z2)·∂C/∂a2"), (0, "∂C/∂w1 = x·σ'(z1)·∂C/∂a1")):
        line = next(line for line in text.splitlines() if line.strip().startswith(name))
        assert abs(float(line.split()[-2]) - single["dW"][i][0, 0]) < 1e-8


def test_explain_refuses_what_it_cannot_show():
    wide = cr.Sequential([cr.Dense(2, 1, activation="sigmoid")], loss="mse")
    with pytest.raises(ValueError, match="Dense\\(1, 1\\)"):
        cr.explain(wide, [[1.0, 2.0]], [0.5])
    ce = cr.Sequential([cr.Dense(1, 1, activation="sigmoid")], loss="binary_cross_entropy")
    with pytest.raises(ValueError, match="mse"):
        cr.explain(ce, [[1.0]], [[1.0]])
    with pytest.raises(IndexError):
        cr.explain(chain(["tanh"]), [[1.0]], [0.5], sample=3)
