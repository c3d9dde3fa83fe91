"""Training end to end: it learns, it is reproducible, and it reaches the expected accuracy."""

import time

import numpy as np
import pytest

import chainrule as cr


def mlp(sizes, loss="cross_entropy", **kw):
    layers = [cr.Dense(a, b, activation="relu") for a, b in zip(sizes[:-2], sizes[1:-1])]
    return cr.Sequential(layers + [cr.Dense(sizes[-2], sizes[-1])], loss=loss, **kw)


def test_mnist_two_epochs_reaches_97_percent(data_dir):
    (X, y), (Xt, yt) = cr.datasets.load_mnist(data_dir / "mnist")
    # A cosine decay over the two epochs leaves a margin of about 0.8 points on every ISA build.
    model = mlp([784, 256, 128, 10], seed=0, optimizer=cr.optimizers.SGD(momentum=0.9))
    start = time.perf_counter()
    history = model.fit(X, y, epochs=2, batch_size=32, lr=0.05,
                        schedule=cr.schedules.CosineDecay(), verbose=0)
    took = time.perf_counter() - start
    accuracy = model.evaluate(Xt, yt)["accuracy"]
    print(f"MNIST 784-256-128-10, 2 epochs: test accuracy {accuracy:.4f} in {took:.1f}s")
    assert accuracy >= 0.97
    assert history["loss"][1] < history["loss"][0]


def test_digits_learns_with_validation_history():
    (X, y), (Xt, yt) = cr.datasets.load_digits()
    model = mlp([64, 64, 10], seed=0)
    history = model.fit(X, y, epochs=30, batch_size=32, lr=0.1, validation_data=(Xt, yt),
                        verbose=0)
    assert len(history) == 30
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "time", "grad_norm"):
        assert len(history[key]) == 30, key
    assert history["loss"][-1] < 0.3 * history["loss"][0]
    assert history["val_accuracy"][-1] >= 0.93
    assert model.evaluate(Xt, yt)["accuracy"] == pytest.approx(history["val_accuracy"][-1])
    proba = model.predict_proba(Xt[:5])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(model.predict(Xt[:5]), proba.argmax(axis=1))


def test_same_seed_same_weights_different_seed_different_weights():
    (X, y), _ = cr.datasets.load_digits()

    def train(seed):
        model = mlp([64, 32, 10], seed=seed)
        model.fit(X, y, epochs=2, batch_size=16, lr=0.05, verbose=0)
        return model.get_weights()

    a, b, c = train(1), train(1), train(2)
    for (Wa, ba), (Wb, bb) in zip(a, b):
        np.testing.assert_array_equal(Wa, Wb)
        np.testing.assert_array_equal(ba, bb)
    assert not np.array_equal(a[0][0], c[0][0])


def test_one_hot_targets_train_like_labels():
    (X, y), _ = cr.datasets.load_digits()
    one_hot = np.eye(10, dtype=np.float32)[y]
    a, b = mlp([64, 16, 10], seed=3), mlp([64, 16, 10], seed=3)
    a.fit(X, y, epochs=2, lr=0.05, verbose=0)
    b.fit(X, one_hot, epochs=2, lr=0.05, verbose=0)
    np.testing.assert_allclose(a.get_weights()[0][0], b.get_weights()[0][0], rtol=1e-5,
                               atol=1e-6)


def test_regression_with_mse_fits_a_smooth_function():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(512, 2))
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2
    model = cr.Sequential([cr.Dense(2, 32, activation="tanh"), cr.Dense(32, 1)], loss="mse",
                          dtype="float64", seed=0, optimizer="adam")
    model.fit(X, y, epochs=200, batch_size=32, lr=0.01, verbose=0)
    assert model.predict(X).shape == (512,)
    assert model.evaluate(X, y)["loss"] < 0.01


def test_binary_cross_entropy_separates_two_blobs():
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(-1, 0.5, (200, 2)), rng.normal(1, 0.5, (200, 2))])
    y = np.repeat([0, 1], 200)
    model = cr.Sequential([cr.Dense(2, 8, activation="tanh"), cr.Dense(8, 1)],
                          loss="binary_cross_entropy", seed=0)
    model.fit(X, y, epochs=20, batch_size=16, lr=0.1, verbose=0)
    assert model.evaluate(X, y)["accuracy"] > 0.95
    assert set(np.unique(model.predict(X))) <= {0, 1}


def test_fit_continues_where_it_stopped():
    (X, y), _ = cr.datasets.load_digits()
    model = mlp([64, 32, 10], seed=0)
    model.fit(X, y, epochs=1, lr=0.05, verbose=0)
    model.fit(X, y, epochs=2, lr=0.05, verbose=0)
    assert model.history.epoch == [1, 2, 3]


def test_dtype_float64_model_trains():
    (X, y), (Xt, yt) = cr.datasets.load_digits(dtype=np.float64)
    model = mlp([64, 32, 10], seed=0, dtype="float64")
    model.fit(X, y, epochs=10, lr=0.1, verbose=0)
    assert model.layers[0].W.dtype == np.float64
    assert model.evaluate(Xt, yt)["accuracy"] > 0.9


def test_progress_bar_reports_each_epoch(capsys):
    (X, y), _ = cr.datasets.load_digits()
    mlp([64, 16, 10], seed=0).fit(X, y, epochs=2, lr=0.05, verbose=1)
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err and "samples/s" in err
