"""Bad input gets a clear Python exception, never a crash."""

import numpy as np
import pytest

import chainrule as cr


@pytest.fixture
def model():
    return cr.Sequential([cr.Dense(4, 5, activation="relu"), cr.Dense(5, 3)], seed=0)


def data(n=10):
    rng = np.random.default_rng(0)
    return rng.random((n, 4), dtype=np.float32), rng.integers(0, 3, size=n)


def test_wrong_feature_count(model):
    X, y = data()
    with pytest.raises(ValueError, match="3 features, the model expects 4"):
        model.fit(X[:, :3], y, verbose=0)
    with pytest.raises(ValueError, match="expects 4"):
        model.predict(np.zeros((2, 7)))


def test_mismatched_lengths(model):
    X, y = data()
    with pytest.raises(ValueError, match="10 samples but y has 9"):
        model.fit(X, y[:9], verbose=0)


def test_labels_out_of_range(model):
    X, y = data()
    y[4] = 3
    with pytest.raises(ValueError, match=r"label 3 at index 4 is outside \[0, 3\)"):
        model.fit(X, y, verbose=0)
    y[4] = -1
    with pytest.raises(ValueError, match="outside"):
        model.evaluate(X, y)
    with pytest.raises(ValueError, match="whole numbers"):
        model.fit(X, y.astype(float) + 0.5, verbose=0)


def test_nan_and_inf_in_X_name_the_place(model):
    X, y = data()
    X[3, 2] = np.nan
    with pytest.raises(ValueError, match="row 3, column 2"):
        model.fit(X, y, verbose=0)
    X[3, 2] = 0
    X[7, 1] = np.inf
    with pytest.raises(ValueError, match="row 7, column 1"):
        model.predict(X)


def test_shapes_and_types(model):
    X, y = data()
    with pytest.raises(ValueError, match="2-D"):
        model.predict(X[0])
    with pytest.raises(ValueError, match="no samples"):
        model.predict(np.zeros((0, 4)))
    with pytest.raises(TypeError, match="real numbers"):
        model.predict(np.array([["a", "b", "c", "d"]]))
    with pytest.raises(TypeError, match="real numbers"):
        model.predict(np.zeros((2, 4), dtype=complex))


def test_bad_hyper_parameters(model):
    X, y = data()
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(X, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="epochs"):
        model.fit(X, y, epochs=0, verbose=0)
    with pytest.raises(ValueError, match="lr"):
        model.fit(X, y, lr=-1.0, verbose=0)
    with pytest.raises(ValueError, match="valid names"):
        model.fit(X, y, optimizer="adamax", verbose=0)


def test_bad_architectures():
    with pytest.raises(ValueError, match="valid names"):
        cr.Sequential([cr.Dense(2, 2, activation="swish")])
    with pytest.raises(ValueError, match="valid names"):
        cr.Sequential([cr.Dense(2, 2)], loss="hinge")
    with pytest.raises(ValueError, match="expects 3 inputs"):
        cr.Sequential([cr.Dense(2, 4), cr.Dense(3, 2)])
    with pytest.raises(ValueError, match="positive"):
        cr.Dense(0, 3)
    with pytest.raises(ValueError, match="softmax output"):
        cr.Sequential([cr.Dense(2, 2, activation="relu")], loss="cross_entropy")
    with pytest.raises(ValueError, match="dtype"):
        cr.Sequential([cr.Dense(2, 2)], dtype="float16")
    with pytest.raises(ValueError, match="dtype must be float32 or float64, got None"):
        cr.Sequential([cr.Dense(2, 2)], dtype=None)  # numpy would read None as float64


def test_divergence_stops_with_a_clear_error_and_finite_weights():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4)) * 1e3
    y = rng.normal(size=(64, 1)) * 1e3
    model = cr.Sequential([cr.Dense(4, 16, activation="relu"), cr.Dense(16, 1)], loss="mse",
                          seed=0)
    with pytest.raises(FloatingPointError, match="epoch 1, batch"):
        model.fit(X, y, epochs=5, batch_size=8, lr=10.0, verbose=0)
    assert all(np.isfinite(W).all() and np.isfinite(b).all() for W, b in model.get_weights())


def test_numpy_integer_layer_sizes_are_accepted():
    layer = cr.Dense(np.int64(4), np.int32(3))
    assert (layer.n_in, layer.n_out) == (4, 3) and type(layer.n_in) is int
    with pytest.raises(ValueError, match="positive integer"):
        cr.Dense(4.0, 3)
    with pytest.raises(ValueError, match="positive integer"):
        cr.Dense(True, 3)


def test_sparse_input_is_refused_with_the_way_out(model):
    from scipy import sparse  # installed with scikit-learn, a test dependency
    with pytest.raises(TypeError, match=r"sparse matrix; the core is dense: pass X.toarray\(\)"):
        model.predict(sparse.csr_matrix(np.eye(4)))


@pytest.mark.parametrize("value", ["abc", "0", "2.5"])
def test_a_bad_thread_variable_warns_instead_of_breaking_import(value):
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", "import chainrule"], capture_output=True,
                            text=True, env=dict(os.environ, CHAINRULE_NUM_THREADS=value))
    assert result.returncode == 0, result.stderr
    assert f"CHAINRULE_NUM_THREADS={value!r} is not a positive integer; ignored" in result.stderr


def test_binary_cross_entropy_targets_must_be_probabilities():
    model = cr.Sequential([cr.Dense(4, 1)], loss="binary_cross_entropy")
    X, y = data()
    targets = (y > 0).astype(float)
    targets[5] = -1.0
    with pytest.raises(ValueError, match=r"must be in \[0, 1\], got -1.0 at row 5, column 0"):
        model.fit(X, targets, verbose=0)


def test_a_column_of_class_labels_is_taken_as_labels():
    """Keras' sparse labels of shape (n, 1): one column cannot be one-hot rows of 3 classes."""
    X, y = data()
    column = cr.Sequential([cr.Dense(4, 3)], seed=0)
    column.fit(X, y[:, None], epochs=2, verbose=0)
    flat = cr.Sequential([cr.Dense(4, 3)], seed=0)
    flat.fit(X, y, epochs=2, verbose=0)
    np.testing.assert_array_equal(column.layers[0].W, flat.layers[0].W)
