"""Backpropagation against central finite differences, in float64."""

import numpy as np
import pytest

import chainrule as cr

HIDDEN = ["identity", "sigmoid", "tanh", "relu", "leaky_relu"]
# (loss, output activation, targets maker)
LOSSES = [
    ("mse", None, lambda rng, n, k: rng.normal(size=(n, k))),
    ("cross_entropy", "softmax", lambda rng, n, k: rng.integers(0, k, size=n)),
    ("binary_cross_entropy", "sigmoid",
     lambda rng, n, k: (rng.random((n, k)) > 0.5).astype(np.float64)),
]
STEP = 1e-6


def three_layer_net(hidden, loss, output, seed):
    layers = [cr.Dense(5, 6, activation=hidden), cr.Dense(6, 4, activation=hidden),
              cr.Dense(4, 3, activation=output or hidden)]
    return cr.Sequential(layers, loss=loss, dtype="float64", seed=seed)


def away_from_kinks(model, X, y):
    """ReLU's derivative jumps at z = 0; keep every z well clear of it so differences are exact."""
    return all(np.abs(layer["z"]).min() > 1e3 * STEP for layer in model._net.trace(
        model._features(X), model._targets(y, len(X))))


def mean_cost(model, X, y):
    return model.evaluate(X, y)["loss"]


def numeric_gradient(f, values):
    """Central differences of f() with respect to each entry of the array `values`, in place."""
    grad = np.zeros_like(values)
    for idx in np.ndindex(values.shape):
        old = values[idx]
        values[idx] = old + STEP
        up = f()
        values[idx] = old - STEP
        down = f()
        values[idx] = old
        grad[idx] = (up - down) / (2 * STEP)
    return grad


def relative_error(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-12)


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("loss, output, make_y", LOSSES, ids=[c[0] for c in LOSSES])
def test_parameter_and_input_gradients(hidden, loss, output, make_y):
    rng = np.random.default_rng(7)
    for seed in range(20):
        model = three_layer_net(hidden, loss, output, seed)
        X, y = rng.normal(size=(8, 5)), make_y(rng, 8, 3)
        if away_from_kinks(model, X, y):
            break
    grads = model.gradients(X, y)
    for i, layer in enumerate(model.layers):
        dW = numeric_gradient(lambda: mean_cost(model, X, y), layer.W)
        db = numeric_gradient(lambda: mean_cost(model, X, y), layer.b)
        assert relative_error(dW, grads["dW"][i]) <= 1e-6, f"∂C/∂W of layer {i}"
        assert relative_error(db, grads["db"][i]) <= 1e-6, f"∂C/∂b of layer {i}"
    # ∂C_k/∂x_k per sample: the mean cost's derivative is dx / n.
    dx = numeric_gradient(lambda: mean_cost(model, X, y), X) * len(X)
    assert relative_error(dx, grads["dx"]) <= 1e-6


@pytest.mark.parametrize("output", ["identity", "sigmoid", "tanh", "relu", "leaky_relu",
                                    "softmax"])
def test_mse_with_each_output_activation(output):
    rng = np.random.default_rng(3)
    for seed in range(20):
        model = three_layer_net("tanh", "mse", output, seed)
        X, y = rng.normal(size=(6, 5)), rng.random((6, 3))
        if away_from_kinks(model, X, y):
            break
    grads = model.gradients(X, y)
    for i, layer in enumerate(model.layers):
        dW = numeric_gradient(lambda: mean_cost(model, X, y), layer.W)
        assert relative_error(dW, grads["dW"][i]) <= 1e-6


def test_gradient_views_match_returned_copies():
    rng = np.random.default_rng(0)
    model = three_layer_net("relu", "cross_entropy", "softmax", 0)
    X, y = rng.normal(size=(4, 5)), np.array([0, 1, 2, 1])
    grads = model.gradients(X, y)
    for i, layer in enumerate(model.layers):
        np.testing.assert_array_equal(layer.dW, grads["dW"][i])
        np.testing.assert_array_equal(layer.db, grads["db"][i])
