"""The Sequential methods that delegate to the backprop, plots and distributed modules."""

import numpy as np
import pytest

import chainrule as cr


def small_model():
    return cr.Sequential([cr.Dense(3, 4, activation="tanh"), cr.Dense(4, 2)], seed=0,
                         dtype="float64")


def test_backprop_method_matches_function_and_gradients():
    model = small_model()
    X, y = np.random.default_rng(0).normal(size=(5, 3)), np.array([0, 1, 1, 0, 1])
    via_method, via_function = model.backprop(X, y), cr.backprop(model, X, y)
    grads = model.gradients(X, y)
    for i, layer in enumerate(via_method["layers"]):
        np.testing.assert_array_equal(layer["dW"], via_function["layers"][i]["dW"])
        np.testing.assert_allclose(layer["dW"], grads["dW"][i], rtol=1e-12)


def test_gradcheck_method_passes():
    model = small_model()
    X, y = np.random.default_rng(1).normal(size=(4, 3)), np.array([1, 0, 1, 1])
    assert model.gradcheck(X, y).passed


def test_plot_method_draws_and_rejects_unknown_kinds():
    pytest.importorskip("matplotlib")
    model = small_model()
    X, y = np.random.default_rng(2).normal(size=(20, 3)), np.arange(20) % 2
    model.fit(X, y, epochs=2, verbose=0)
    assert model.plot("history") is not None
    with pytest.raises(ValueError, match="valid kinds"):
        model.plot("pie")


def test_fit_distributed_argument_is_checked():
    model = small_model()
    X, y = np.zeros((4, 3)), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="'mpi'"):
        model.fit(X, y, distributed="nccl", verbose=0)
    with pytest.raises(TypeError, match="unexpected"):
        model.fit(X, y, comm=None, verbose=0)
