"""Arrays cross into C++ without copies; weights are views of the C++ buffers."""

import numpy as np
import pytest

import chainrule as cr
from chainrule import _core


def model32():
    return cr.Sequential([cr.Dense(6, 4, activation="relu"), cr.Dense(4, 3)], seed=0)


def test_float32_c_contiguous_input_is_not_copied():
    model = model32()
    X = np.random.default_rng(0).random((5, 6), dtype=np.float32)
    assert model._features(X) is X


def test_core_refuses_a_wrong_dtype_instead_of_converting_silently():
    model = model32()
    X64 = np.zeros((2, 6))
    with pytest.raises(TypeError, match="float32"):
        model._net.predict(X64)
    with pytest.raises(ValueError, match="contiguous rows"):
        model._net.predict(np.zeros((6, 2), dtype=np.float32).T)


def test_rows_with_a_stride_pass_without_a_copy():
    model = model32()
    big = np.random.default_rng(1).random((5, 10), dtype=np.float32)
    view = big[:, :6]  # rows are contiguous, with a row stride of 10
    np.testing.assert_allclose(model._net.predict(view), model.forward(view.copy()), rtol=1e-6)


def test_other_dtypes_and_orders_are_converted_once_and_give_the_same_result():
    model = model32()
    X = np.random.default_rng(2).random((5, 6))
    expected = model.forward(X.astype(np.float32))
    np.testing.assert_allclose(model.forward(X), expected, rtol=1e-6)
    np.testing.assert_allclose(model.forward(np.asfortranarray(X)), expected, rtol=1e-6)
    np.testing.assert_allclose(model.forward(X.tolist()), expected, rtol=1e-6)


def test_weights_are_views_of_the_flat_parameter_buffer():
    model = model32()
    params = model._net.params
    for layer in model.layers:
        assert np.shares_memory(layer.W, params)
        assert np.shares_memory(layer.b, params)
    model.layers[0].W[0, 0] = 42.0
    assert params[0] == 42.0
    model.layers[1].b = [1, 2, 3]
    np.testing.assert_array_equal(params[-3:], [1, 2, 3])


def test_set_weights_changes_predictions():
    model = model32()
    model.set_weights([(np.zeros((6, 4)), np.zeros(4)), (np.zeros((4, 3)), [0.0, 0.0, 5.0])])
    assert (model.predict(np.ones((3, 6))) == 2).all()


def test_views_keep_the_network_alive():
    W = model32().layers[0].W
    import gc
    gc.collect()
    W[...] = 1.0  # would crash if the buffer had been freed
    assert W.sum() == 24.0


def test_threads_can_be_set():
    before = _core.get_num_threads()
    cr.set_num_threads(1)
    assert cr.get_num_threads() == 1
    cr.set_num_threads(before)
    with pytest.raises(ValueError):
        cr.set_num_threads(0)
