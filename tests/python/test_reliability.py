"""Reliability (issue #6): bad input gets a clear exception, divergence and Ctrl-C leave a
consistent model, model files are safe, training resumes exactly, threads are safe."""

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule import callbacks
from chainrule.serialization import ModelFileError

FIXTURES = Path(__file__).parent / "fixtures"
ENV = dict(os.environ, CHAINRULE_NUM_THREADS="1")


def small_model(**kw):
    kw.setdefault("seed", 0)
    return cr.Sequential([cr.Dense(3, 4), cr.Dense(4, 2)], **kw)


def xy(n=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)), np.arange(n) % 2


# ----- bad input → exception ----------------------------------------------------------------
X, Y = xy()
BAD_FIT = [
    ("X 1-D", dict(X=X[0], y=Y[:1]), ValueError, "2-D"),
    ("X 3-D", dict(X=X[None]), ValueError, "2-D"),
    ("wrong feature count", dict(X=X[:, :2]), ValueError, "features"),
    ("X/y length mismatch", dict(y=Y[:5]), ValueError, "10 samples but y has 5"),
    ("empty X", dict(X=X[:0], y=Y[:0]), ValueError, "no samples"),
    ("object X", dict(X=X.astype(object)), TypeError, "real numbers"),
    ("string X", dict(X=X.astype(str)), TypeError, "real numbers"),
    ("complex X", dict(X=X.astype(complex)), TypeError, "real numbers"),
    ("None X", dict(X=None), TypeError, "real numbers"),
    ("ragged X", dict(X=[[1, 2, 3], [1, 2]], y=[0, 1]), ValueError, "rectangular"),
    ("NaN in X", dict(X=np.where(np.arange(30).reshape(10, 3) == 7, np.nan, X)), ValueError,
     "row 2, column 1"),
    ("inf in X", dict(X=np.where(np.arange(30).reshape(10, 3) == 29, -np.inf, X)), ValueError,
     "row 9, column 2"),
    ("X overflows float32", dict(X=X * 1e300), ValueError, "overflows float32"),
    ("label out of range", dict(y=Y + 1), ValueError, "outside [0, 2)"),
    ("negative label", dict(y=Y - 1), ValueError, "outside [0, 2)"),
    ("fractional label", dict(y=Y + 0.5), ValueError, "whole numbers"),
    ("NaN label", dict(y=np.where(Y == 0, np.nan, 1.0)), ValueError, "NaN"),
    ("string labels", dict(y=Y.astype(str)), TypeError, "numbers"),
    ("scalar y", dict(y=1), ValueError, "y has 0"),
    ("one-hot of wrong width", dict(y=np.eye(3)[Y]), ValueError, "shape (10, 2)"),
    ("batch_size 0", dict(batch_size=0), ValueError, "batch_size"),
    ("batch_size 1.5", dict(batch_size=1.5), TypeError, "batch_size"),
    ("batch_size True", dict(batch_size=True), TypeError, "batch_size"),
    ("epochs 0", dict(epochs=0), ValueError, "epochs"),
    ("epochs -1", dict(epochs=-1), ValueError, "epochs"),
    ("lr 0", dict(lr=0), ValueError, "lr"),
    ("lr -1", dict(lr=-1), ValueError, "lr"),
    ("lr NaN", dict(lr=float("nan")), ValueError, "lr"),
    ("lr inf", dict(lr=float("inf")), ValueError, "lr"),
    ("lr string", dict(lr="fast"), TypeError, "lr"),
    ("unknown optimizer", dict(optimizer="sgdx"), ValueError, "valid names: sgd, adam"),
    ("l2 negative", dict(l2=-1), ValueError, "l2"),
    ("validation_split 1.5", dict(validation_split=1.5), ValueError, "validation_split"),
    ("validation_data not a pair", dict(validation_data=(X,)), ValueError, "pair"),
    ("on_divergence unknown", dict(on_divergence="ignore"), ValueError, "on_divergence"),
]


@pytest.mark.parametrize("case", BAD_FIT, ids=[c[0] for c in BAD_FIT])
def test_bad_fit_input_gets_a_clear_exception(case):
    _, kwargs, error, fragment = case
    kwargs = dict(kwargs)
    model = small_model()
    before = model._net.params.copy()
    with pytest.raises(error, match=None) as info:
        model.fit(kwargs.pop("X", X), kwargs.pop("y", Y), verbose=0, **kwargs)
    assert fragment in str(info.value)
    assert np.array_equal(model._net.params, before)  # refused before touching the model
    assert len(model.history.epoch) == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_first_nonfinite_value_is_found_wherever_it_is(dtype):
    """The core's one-pass test (blocks of 4096 values) against numpy's, at block edges, for
    C-contiguous arrays, and numpy's own path for the others."""
    from chainrule._validation import _all_finite, _first_nonfinite
    big = np.finfo(dtype).max
    base = np.random.default_rng(3).normal(size=(5000, 7)).astype(dtype)
    base[0, 0], base[1, 1] = big, -big  # finite, although max - min overflows
    assert _all_finite(base) and _all_finite(base.T)
    for flat in (0, 4095, 4096, 8191, 20000, base.size - 1):
        for bad in (np.nan, np.inf, -np.inf):
            X = base.copy()
            X.flat[flat] = bad
            expected = tuple(int(i) for i in np.argwhere(~np.isfinite(X))[0])
            for candidate, where in ((X, expected), (X.ravel(), (flat,)),
                                     (X.T, expected[::-1])):  # X.T: numpy's path
                assert not _all_finite(candidate)
                assert _first_nonfinite(candidate) == where
    assert cr._core.first_nonfinite(np.zeros(0, dtype)) == -1
    with pytest.raises(TypeError, match="float32 or float64"):
        cr._core.first_nonfinite(np.zeros(3, np.float16))


BAD_MODELS = [
    ("unknown activation", lambda: cr.Sequential([cr.Dense(3, 4, activation="relux"),
                                                   cr.Dense(4, 2)]), ValueError,
     "valid names: identity"),
    ("unknown loss", lambda: small_model(loss="hinge"), ValueError, "valid names: mse"),
    ("unknown dtype", lambda: small_model(dtype="float16"), ValueError, "float32 or float64"),
    ("zero units", lambda: cr.Dense(0, 3), ValueError, "positive integer"),
    ("negative units", lambda: cr.Dense(3, -2), ValueError, "positive integer"),
    ("float units", lambda: cr.Dense(2.5, 3), ValueError, "positive integer"),
    ("dropout 1", lambda: cr.Dropout(1.0), ValueError, "[0, 1)"),
    ("dropout NaN", lambda: cr.Dense(2, 2, dropout=float("nan")), ValueError, "[0, 1)"),
    ("mismatched layers", lambda: cr.Sequential([cr.Dense(3, 4), cr.Dense(5, 2)]), ValueError,
     "expects 5 inputs"),
    ("no layers", lambda: cr.Sequential([]), ValueError, "at least one Dense"),
    ("softmax hidden", lambda: cr.Sequential([cr.Dense(3, 4, activation="softmax"),
                                               cr.Dense(4, 2)]), ValueError, "output layer"),
    ("seed string", lambda: small_model(seed="abc"), TypeError, "seed"),
    ("seed negative", lambda: small_model(seed=-1), ValueError, "seed"),
    ("leaky_slope NaN", lambda: small_model(leaky_slope=float("nan")), ValueError,
     "leaky_slope"),
    ("Dense(10**9, 10**9)", lambda: cr.Sequential([cr.Dense(10**9, 10**9), cr.Dense(10**9, 2)]),
     (MemoryError, ValueError), "parameters"),
    ("Dense(10**10, 10**10)", lambda: cr.Sequential([cr.Dense(10**10, 10**10),
                                                     cr.Dense(10**10, 2)]),
     (MemoryError, ValueError), "parameters"),
    ("Dense(2**40, 2**40)", lambda: cr.Sequential([cr.Dense(2**40, 2**40), cr.Dense(2**40, 2)]),
     (MemoryError, ValueError), "parameters"),
    ("core Network32 with 2**80 parameters",
     lambda: cr._core.Network32([2**40, 2**40, 2], ["relu", "softmax"], "cross_entropy", 0.01),
     ValueError, "parameters"),
    ("core Network32 negative size",
     lambda: cr._core.Network32([-1, 2], ["softmax"], "cross_entropy", 0.01), ValueError,
     "positive"),
    ("core train_batches float64 X on float32",
     lambda: small_model()._net.train_batches(X, Y, None, 2, 0, 1, 0.1), TypeError, "float32"),
]


@pytest.mark.parametrize("case", BAD_MODELS, ids=[c[0] for c in BAD_MODELS])
def test_bad_architecture_gets_a_clear_exception(case):
    _, make, error, fragment = case
    with pytest.raises(error) as info:
        make()
    assert fragment in str(info.value)


def test_bad_inference_input():
    model = small_model()
    with pytest.raises(ValueError, match="row 0, column 0"):
        model.predict(np.full((2, 3), np.inf))
    with pytest.raises(ValueError, match="reshape"):
        model.predict(X[0])
    with pytest.raises(ValueError, match="10 samples but y has 3"):
        model.evaluate(X, Y[:3])
    with pytest.raises(FileNotFoundError):
        cr.load("/nonexistent/model.npz")


def test_core_guards_against_index_overflow():
    net = small_model()._net
    X32 = X.astype(np.float32)
    labels = Y.astype(np.int32)
    stats = net.train_batches(X32, labels, None, 2**62, 2**62, 2**62, 0.1)
    assert stats["n_batches"] == 0
    with pytest.raises(ValueError):
        net.optimizer_step = -1


def test_int_bool_fortran_and_strided_inputs_are_accepted_with_correct_results():
    model = small_model(dtype="float64")
    base = model.predict_proba(X)
    assert np.array_equal(model.predict_proba(np.asfortranarray(X)), base)
    assert np.array_equal(model.predict_proba(np.repeat(X, 2, axis=1)[:, ::2]), base)
    assert np.array_equal(model.predict_proba(X[::-1])[::-1], base)
    ints = np.arange(12).reshape(4, 3)
    assert np.array_equal(model.predict_proba(ints), model.predict_proba(ints.astype(float)))
    bools = ints % 2 == 0
    assert np.array_equal(model.predict_proba(bools), model.predict_proba(bools.astype(float)))
    a, b = small_model(dtype="float64"), small_model(dtype="float64")
    a.fit(X, Y, epochs=2, batch_size=3, verbose=0)
    b.fit(np.asfortranarray(X), Y.astype(np.uint8), epochs=2, batch_size=3, verbose=0)
    assert np.array_equal(a._net.params, b._net.params)


# ----- divergence -----------------------------------------------------------------------------
def diverging_data():
    """mse targets whose 4th batch (of 2, unshuffled) overflows the float32 loss."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(12, 3))
    y = rng.normal(size=(12, 1))
    y[7] = 1e30
    return X, y


def regression_model():
    return cr.Sequential([cr.Dense(3, 4), cr.Dense(4, 1)], loss="mse", seed=3)


def test_divergence_stops_at_the_batch_with_the_weights_of_the_last_finite_step():
    Xd, yd = diverging_data()
    model = regression_model()
    model.fit(Xd[:6], yd[:6], epochs=1, batch_size=2, shuffle=False, verbose=0)
    with pytest.raises(FloatingPointError) as info:
        model.fit(Xd, yd, epochs=3, batch_size=2, shuffle=False, verbose=0)
    message = str(info.value)
    assert "epoch 2, batch 4" in message and "layer" in message
    assert np.isfinite(model._net.params).all()
    assert len(model.history.epoch) == 1  # the completed epoch is kept
    # Exactly the first three batches of the second epoch were applied, nothing more.
    reference = regression_model()
    reference.fit(Xd[:6], yd[:6], epochs=2, batch_size=2, shuffle=False, verbose=0)
    assert np.array_equal(model._net.params, reference._net.params)
    assert model._net.optimizer_step == reference._net.optimizer_step


def test_divergence_can_warn_and_stop_instead():
    Xd, yd = diverging_data()
    model = regression_model()
    ended = []
    cb = callbacks.LambdaCallback(on_train_end=lambda logs: ended.append(logs))
    with pytest.warns(RuntimeWarning, match="epoch 1, batch 4"):
        history = model.fit(Xd, yd, epochs=3, batch_size=2, shuffle=False, verbose=0,
                            on_divergence="warn", callbacks=[cb])
    assert history is model.history and len(history.epoch) == 0 and ended
    assert np.isfinite(model._net.params).all()
    model.fit(Xd[:6], yd[:6], epochs=1, batch_size=2, verbose=0)  # still usable


def test_huge_learning_rate_diverges_cleanly():
    model = regression_model()
    Xd, yd = diverging_data()
    with pytest.raises(FloatingPointError, match="diverged"):
        model.fit(Xd[:6], yd[:6] * 1e3, epochs=50, lr=1e30, batch_size=2, verbose=0)


@pytest.mark.parametrize("epochs", [1, 3])
def test_an_update_that_overflows_the_weights_is_reported_even_as_the_last(epochs):
    """The core checks loss and gradients before each update; the weights an update leaves are
    checked after each call, so fit never returns weights that are not finite."""
    X = np.random.default_rng(0).normal(size=(50, 4))
    model = cr.Sequential([cr.Dense(4, 8), cr.Dense(8, 1)], loss="mse")
    with pytest.raises(FloatingPointError, match=r"epoch 1, batch 1: its update overflowed the "
                                                 r"weights, which are not finite now"):
        model.fit(X, X[:, :1] * 100, lr=1e38, epochs=epochs, batch_size=50, verbose=0)
    assert len(model.history.epoch) == 0


def test_a_layer_cannot_join_two_models():
    layers = [cr.Dense(4, 8), cr.Dense(8, 2)]
    cr.Sequential(layers)
    with pytest.raises(ValueError, match="already belongs to a model"):
        cr.Sequential(layers)
    twice = cr.Dense(4, 4)
    with pytest.raises(ValueError, match="appears twice"):
        cr.Sequential([twice, twice])


# ----- KeyboardInterrupt ---------------------------------------------------------------------
def classification_data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)


def dropout_adam_model(seed=5):
    return cr.Sequential([cr.Dense(6, 16), cr.Dropout(0.3), cr.Dense(16, 3)],
                         optimizer="adam", seed=seed)


class InterruptAt(callbacks.Callback):
    def __init__(self, epoch, calls=1):
        self.epoch, self.calls, self.seen = epoch, calls, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_batch_end(self, batch, logs=None):
        if self.current == self.epoch:
            self.seen += 1
            if self.seen == self.calls:
                self.batches_done = logs["batches_done"]
                raise KeyboardInterrupt


def test_keyboard_interrupt_keeps_history_and_fit_finishes_the_epoch_exactly():
    Xc, yc = classification_data()
    whole = dropout_adam_model()
    whole.fit(Xc, yc, epochs=3, batch_size=8, lr=0.01, verbose=0)

    model = dropout_adam_model()
    stop = InterruptAt(epoch=1, calls=2)
    with pytest.raises(KeyboardInterrupt):
        model.fit(Xc, yc, epochs=3, batch_size=8, lr=0.01, verbose=0, callbacks=[stop])
    assert len(model.history.epoch) == 1 and model._epochs_done == 1
    assert 0 < stop.batches_done < 38
    assert model._net.optimizer_step == 38 + stop.batches_done  # the last completed batch
    assert np.isfinite(model._net.params).all()
    model.fit(Xc, yc, epochs=2, batch_size=8, verbose=0)  # finishes epoch 2, then epoch 3
    assert model.history.epoch == [1, 2, 3]
    assert np.array_equal(model._net.params, whole._net.params)


def test_a_fit_on_other_data_after_an_interrupt_starts_a_new_epoch():
    Xc, yc = classification_data()
    model = dropout_adam_model()
    with pytest.raises(KeyboardInterrupt):
        model.fit(Xc, yc, epochs=2, batch_size=8, verbose=0, callbacks=[InterruptAt(0)])
    with pytest.warns(RuntimeWarning, match="starts a new epoch"):
        model.fit(Xc[:100], yc[:100], epochs=1, batch_size=8, verbose=0)
    assert model.history.epoch == [1]


SIGINT_CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import chainrule as cr
    from chainrule import callbacks
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 32)); y = (X[:, 0] > 0).astype(int)
    model = cr.Sequential([cr.Dense(32, 64), cr.Dropout(0.2), cr.Dense(64, 2)],
                          optimizer="adam", seed=1)
    ready = callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: print("epoch", flush=True) if epoch == 0 else None)
    try:
        model.fit(X, y, epochs=100000, batch_size=16, verbose=0, callbacks=[ready])
    except KeyboardInterrupt:
        partial = dict(model._partial_epoch or {}) or None
        steps = model._net.optimizer_step
        done = model._epochs_done
        model.fit(X, y, epochs=1, batch_size=16, verbose=0)   # resumable
        print(json.dumps({"epochs": done, "history": len(model.history.epoch) - 1,
                          "steps": steps,
                          "batches_done": partial["batches_done"] if partial else None,
                          "finite": bool(np.isfinite(model._net.params).all()),
                          "after": model._epochs_done}), flush=True)
        sys.exit(0)
    sys.exit(3)
""")


def test_sigint_during_fit_leaves_a_consistent_resumable_model():
    child = subprocess.Popen([sys.executable, "-c", SIGINT_CHILD], stdout=subprocess.PIPE,
                             text=True, env=ENV)
    try:
        assert child.stdout.readline().strip() == "epoch"
        time.sleep(0.3)
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["finite"] and result["history"] == result["epochs"] >= 1
    n_batches = 4000 // 16
    if result["batches_done"] is None:  # interrupted exactly between two epochs
        assert result["steps"] == result["epochs"] * n_batches
    else:
        assert result["steps"] == result["epochs"] * n_batches + result["batches_done"]
    assert result["after"] == result["epochs"] + 1


# ----- model files ---------------------------------------------------------------------------
def trained(tmp_path):
    Xc, yc = classification_data(100)
    model = dropout_adam_model()
    model.fit(Xc, yc, epochs=2, batch_size=16, verbose=0)
    path = tmp_path / "model.npz"
    model.save(path)
    return model, path, Xc


def test_save_load_round_trip_and_no_pickle(tmp_path):
    model, path, Xc = trained(tmp_path)
    loaded = cr.load(path)
    assert np.array_equal(loaded._net.params, model._net.params)
    assert np.array_equal(loaded.forward(Xc), model.forward(Xc))
    assert loaded.history.history == model.history.history
    with np.load(path, allow_pickle=False) as f:  # readable without pickle
        assert "header" in f.files
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert os.stat(path).st_mode & 0o777 == os.stat(plain).st_mode & 0o777  # not mkstemp's 0600


def test_a_crash_while_saving_leaves_the_old_file(tmp_path, monkeypatch):
    model, path, _ = trained(tmp_path)
    old = path.read_bytes()
    model.fit(*classification_data(100), epochs=1, verbose=0)

    def crash(*args):
        raise OSError("disk pulled out")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk pulled out"):
        model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]  # no temporary left


def rewrite(path, header=None, arrays=None):
    with np.load(path, allow_pickle=False) as f:
        contents = {k: f[k] for k in f.files}
    h = json.loads(contents.pop("header").tobytes())
    if header:
        header(h)
    if arrays:
        arrays(contents)
    buffer = io.BytesIO()
    np.savez(buffer, header=np.frombuffer(json.dumps(h).encode(), dtype=np.uint8), **contents)
    path.write_bytes(buffer.getvalue())


def test_truncated_tampered_and_foreign_files_get_a_clear_error(tmp_path):
    _, path, _ = trained(tmp_path)
    good = path.read_bytes()
    bad = tmp_path / "bad.npz"

    cases = {
        "truncated": lambda: bad.write_bytes(good[: len(good) // 2]),
        "empty": lambda: bad.write_bytes(b""),
        "text": lambda: bad.write_bytes(b"hello, not a model"),
        "flipped byte": lambda: bad.write_bytes(good[:600] + bytes([good[600] ^ 1]) + good[601:]),
    }
    for name, make in cases.items():
        make()
        with pytest.raises(ModelFileError):
            cr.load(bad)

    def weights(c):
        c["params"] = c["params"] + 1
    header_edits = {
        "tampered weights": dict(arrays=weights),
        "tampered header": dict(header=lambda h: h.update(epochs_done=99)),
        "tampered sizes": dict(header=lambda h: h.update(sizes=[6, 17, 3])),
        "foreign format": dict(header=lambda h: h.update(format="keras")),
        "newer version": dict(header=lambda h: h.update(version=99)),
        "bad version": dict(header=lambda h: h.update(version="2")),
    }
    for name, edit in header_edits.items():
        bad.write_bytes(good)
        rewrite(bad, **edit)
        with pytest.raises(ModelFileError) as info:
            cr.load(bad)
        if name == "newer version":
            assert "upgrade chainrule" in str(info.value)

    np.savez(bad, a=np.arange(3))  # a foreign npz
    with pytest.raises(ModelFileError, match="no header"):
        cr.load(bad)
    with open(bad, "wb") as f:  # object arrays need pickle: refused, never unpickled
        np.save(f, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ModelFileError):
        cr.load(bad)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("header.npy", b"\x93NUMPY garbage")
    bad.write_bytes(buffer.getvalue())
    with pytest.raises(ModelFileError):
        cr.load(bad)


@pytest.mark.parametrize("name", ["model_v1.npz", "model_v2.npz"])
def test_committed_fixture_files_still_load(name):
    expected = np.load(FIXTURES / "expected.npz", allow_pickle=False)
    model = cr.load(FIXTURES / name)
    assert model._epochs_done == 2 and model.optimizer.kind == "adam"
    # float64; each ISA build (baseline, v3, v4) rounds its sums in its own order
    np.testing.assert_allclose(model.forward(expected["X"]), expected["outputs"],
                               rtol=1e-12, atol=1e-15)
    model.fit(expected["X"], [0, 1, 2, 0, 1, 2, 0, 1, 2, 0], epochs=1, verbose=0)


def test_checkpoint_saves_every_n_epochs_and_keeps_the_best(tmp_path):
    Xc, yc = classification_data(200)
    model = dropout_adam_model()
    best = []
    cb = callbacks.Checkpoint(tmp_path / "ck-{epoch}.npz", every=2,
                              best_path=tmp_path / "best.npz", monitor="val_loss")
    record = callbacks.LambdaCallback(on_epoch_end=lambda e, logs: best.append(logs["val_loss"]))
    model.fit(Xc, yc, epochs=5, batch_size=16, lr=0.05, validation_split=0.2, verbose=0,
              callbacks=[cb, record])
    assert sorted(p.name for p in tmp_path.glob("ck-*")) == ["ck-2.npz", "ck-4.npz"]
    assert cr.load(tmp_path / "ck-4.npz")._epochs_done == 4
    assert cb.best == min(best) and cb.best_epoch == 1 + int(np.argmin(best))
    assert cr.load(tmp_path / "best.npz")._epochs_done == cb.best_epoch
    with pytest.raises(ValueError):
        callbacks.Checkpoint(tmp_path / "x.npz", every=0)


# ----- exact resume in a new process ---------------------------------------------------------
RESUME_CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    import chainrule as cr
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6)); y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
    model = cr.load(sys.argv[1])
    model.fit(X, y, epochs=int(sys.argv[3]), batch_size=8, verbose=0,
              schedule=model.schedule)
    np.save(sys.argv[2], np.array(model._net.params))
""")


def run_child(model_path, out_path, epochs):
    subprocess.run([sys.executable, "-c", RESUME_CHILD, str(model_path), str(out_path),
                    str(epochs)], check=True, env=ENV, timeout=300)
    return np.load(out_path)


def test_train_4_save_load_in_a_new_process_train_6_is_bit_identical(tmp_path):
    Xc, yc = classification_data()
    whole = dropout_adam_model()
    whole.fit(Xc, yc, epochs=10, batch_size=8, lr=0.01, verbose=0)
    part = dropout_adam_model()
    part.fit(Xc, yc, epochs=4, batch_size=8, lr=0.01, verbose=0)
    part.save(tmp_path / "four.npz")
    resumed = run_child(tmp_path / "four.npz", tmp_path / "out.npy", 6)
    assert np.array_equal(resumed, whole._net.params)


def test_resume_after_ctrl_c_mid_epoch_in_a_new_process_is_bit_identical(tmp_path):
    Xc, yc = classification_data()
    whole = dropout_adam_model()
    whole.fit(Xc, yc, epochs=3, batch_size=8, lr=0.01, verbose=0)
    part = dropout_adam_model()
    with pytest.raises(KeyboardInterrupt):
        part.fit(Xc, yc, epochs=3, batch_size=8, lr=0.01, verbose=0,
                 callbacks=[InterruptAt(epoch=1, calls=2)])
    part.save(tmp_path / "interrupted.npz")
    resumed = run_child(tmp_path / "interrupted.npz", tmp_path / "out.npy", 2)
    assert np.array_equal(resumed, whole._net.params)


# ----- threads -------------------------------------------------------------------------------
def test_predict_from_several_threads_gives_correct_results():
    Xc, yc = classification_data(2000)
    model = dropout_adam_model()
    model.fit(Xc, yc, epochs=1, verbose=0)
    expected = model.forward(Xc)
    results, errors = [None] * 8, []

    def work(i):
        try:
            for _ in range(5):
                out = model.forward(Xc)
            results[i] = out
        except BaseException as e:  # pragma: no cover
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for out in results:
        assert np.array_equal(out, expected)


def test_fit_while_other_threads_use_the_model():
    Xc, yc = classification_data(2000)
    model = dropout_adam_model()
    started, tried = threading.Event(), threading.Event()
    failures = []

    def hold_until_tried(batch, logs):
        # Keep the first fit running until the main thread has tried a second one: on a fast
        # machine the whole run would otherwise end before that attempt.
        started.set()
        tried.wait(60)

    def train():
        try:
            model.fit(Xc, yc, epochs=4, batch_size=16, verbose=0,
                      callbacks=[callbacks.LambdaCallback(on_batch_end=hold_until_tried)])
        except BaseException as e:  # pragma: no cover
            failures.append(e)
    trainer = threading.Thread(target=train)
    trainer.start()
    assert started.wait(60)
    try:
        with pytest.raises(RuntimeError, match="already running"):
            model.fit(Xc, yc, verbose=0)
    finally:
        tried.set()
    while trainer.is_alive():  # predict, evaluate, save and gradients during training
        assert np.isfinite(model.forward(Xc[:50])).all()
        assert np.isfinite(model.evaluate(Xc[:50], yc[:50])["loss"])
        model.get_weights()
    trainer.join()
    assert not failures
    assert model.history.epoch == [1, 2, 3, 4]
