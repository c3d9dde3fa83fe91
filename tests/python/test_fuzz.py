"""Property-based tests: the public API driven with arbitrary shapes, dtypes and values either
returns a result or raises one of the documented exception types; it never crashes the
interpreter (a crash would kill the pytest process) and never leaves a half-updated model."""

import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import chainrule as cr  # noqa: E402

DOCUMENTED = (ValueError, TypeError, MemoryError, FloatingPointError)
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

dtypes = st.sampled_from([np.float32, np.float64, np.float16, np.int8, np.int32, np.int64,
                          np.uint8, np.uint64, np.bool_, np.complex64, np.object_, np.str_])
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6)


@st.composite
def arrays(draw):
    dtype = draw(dtypes)
    shape = draw(shapes)
    if dtype in (np.object_, np.str_):
        return np.full(shape, draw(st.sampled_from(["a", None, 1])), dtype=dtype)
    if dtype is np.complex64:
        return np.full(shape, 1 + 2j, dtype=dtype)
    elements = None
    if np.dtype(dtype).kind == "f":
        elements = st.floats(allow_nan=True, allow_infinity=True,
                             width=np.dtype(dtype).itemsize * 8)
    a = draw(hnp.arrays(dtype, shape, elements=elements))
    if draw(st.booleans()) and a.ndim == 2 and a.shape[1] > 1:
        a = np.asfortranarray(a)
    return a


def model_for(loss, n_in, n_out, dtype, dropout):
    hidden = cr.Dense(n_in, 3, dropout=dropout)
    return cr.Sequential([hidden, cr.Dense(3, n_out)], loss=loss, dtype=dtype, seed=0)


@SETTINGS
@given(X=arrays(), y=arrays(), loss=st.sampled_from(["cross_entropy", "mse",
                                                     "binary_cross_entropy"]),
       n_in=st.integers(1, 4), n_out=st.integers(1, 3),
       dtype=st.sampled_from(["float32", "float64"]), dropout=st.sampled_from([0.0, 0.5]),
       batch_size=st.one_of(st.integers(-2, 8), st.just(10**20), st.floats(), st.none()),
       epochs=st.one_of(st.integers(-1, 2), st.floats(0, 2)),
       lr=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-1, 2),
                    st.none()),
       optimizer=st.sampled_from(["sgd", "adam", "rmsprop", "nope", None]),
       shuffle=st.booleans())
def test_fit_evaluate_predict_never_crash(X, y, loss, n_in, n_out, dtype, dropout, batch_size,
                                          epochs, lr, optimizer, shuffle):
    model = model_for(loss, n_in, n_out, dtype, dropout)
    before = model._net.params.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model.fit(X, y, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                      shuffle=shuffle, verbose=0, on_divergence="warn")
        except DOCUMENTED:
            if not model.history.epoch:  # refused input never changes the model...
                assert np.array_equal(model._net.params, before) or \
                    np.isfinite(model._net.params).all()  # ...unless it diverged mid-epoch
        for call in (lambda: model.predict(X), lambda: model.evaluate(X, y),
                     lambda: model.gradients(X, y)):
            try:
                result = call()
            except DOCUMENTED:
                continue
            assert result is not None


@SETTINGS
@given(sizes=st.lists(st.one_of(st.integers(-3, 5), st.integers(10**6, 10**13),
                                 st.floats(0, 5), st.just(True)), min_size=0, max_size=4),
       activation=st.sampled_from(["relu", "tanh", "softmax", "bogus", None]),
       loss=st.sampled_from(["mse", "cross_entropy", "binary_cross_entropy", "hinge"]),
       dtype=st.sampled_from(["float32", "float64", "float16", "int"]),
       seed=st.one_of(st.integers(-5, 2**70), st.text(max_size=2), st.none()))
def test_constructing_models_never_crashes(sizes, activation, loss, dtype, seed):
    try:
        layers = [cr.Dense(a, b, activation=activation) for a, b in zip(sizes, sizes[1:])]
        cr.Sequential(layers, loss=loss, dtype=dtype, seed=seed)
    except DOCUMENTED:
        pass


@SETTINGS
@given(data=st.binary(max_size=3000), cut=st.integers(0, 4000), flip=st.integers(0, 4000))
def test_loading_garbage_or_damaged_files_never_crashes(tmp_path_factory, data, cut, flip):
    from pathlib import Path
    good = (Path(__file__).parent / "fixtures" / "model_v2.npz").read_bytes()
    path = tmp_path_factory.mktemp("fuzz") / "m.npz"
    damaged = bytearray(good[:cut] if cut < len(good) else good)
    if flip < len(damaged):
        damaged[flip] ^= 0x5A
    for content in (data, bytes(damaged)):
        path.write_bytes(content)
        try:
            cr.load(path)
        except ValueError:  # ModelFileError is a ValueError
            pass
