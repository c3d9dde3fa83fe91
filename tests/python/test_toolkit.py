"""Training toolkit: initializers, dropout, schedules, callbacks, early stopping, validation
split, history, model files and reproducibility across thread counts."""

import csv
import math

import numpy as np
import pytest

import chainrule as cr
from chainrule import callbacks, initializers, schedules


def digits(n=None):
    (X, y), (Xt, yt) = cr.datasets.load_digits()
    return (X[:n], y[:n]) if n else (X, y), (Xt, yt)


def mlp(sizes, **kw):
    layers = [cr.Dense(a, b, activation="relu") for a, b in zip(sizes[:-2], sizes[1:-1])]
    return cr.Sequential(layers + [cr.Dense(sizes[-2], sizes[-1])], **kw)


# ----- initialization -------------------------------------------------------------------------

@pytest.mark.parametrize("name,kind,scale", [
    ("glorot_uniform", "uniform", lambda i, o: math.sqrt(6 / (i + o))),
    ("xavier_uniform", "uniform", lambda i, o: math.sqrt(6 / (i + o))),
    ("glorot_normal", "normal", lambda i, o: math.sqrt(2 / (i + o))),
    ("he_uniform", "uniform", lambda i, o: math.sqrt(6 / i)),
    ("kaiming_normal", "normal", lambda i, o: math.sqrt(2 / i)),
    ("he_normal", "normal", lambda i, o: math.sqrt(2 / i)),
    ("lecun_normal", "normal", lambda i, o: math.sqrt(1 / i)),
    ("lecun_uniform", "uniform", lambda i, o: math.sqrt(3 / i)),
])
def test_initializer_distribution(name, kind, scale):
    n_in, n_out = 400, 300
    W = initializers.get(name)(n_in, n_out, np.random.default_rng(0))
    s = scale(n_in, n_out)
    assert W.shape == (n_in, n_out)
    assert abs(W.mean()) < 0.02 * s
    if kind == "uniform":  # limit s: max close to s, std s/√3
        assert np.abs(W).max() <= s and np.abs(W).max() > 0.99 * s
        assert W.std() == pytest.approx(s / math.sqrt(3), rel=0.02)
    else:
        assert W.std() == pytest.approx(s, rel=0.02)


def test_default_initializer_follows_activation_and_is_seeded():
    def build(seed):
        return cr.Sequential([cr.Dense(300, 200, activation="relu"),
                              cr.Dense(200, 100, activation="tanh"), cr.Dense(100, 10)],
                             seed=seed)
    a, b, c = build(5), build(5), build(6)
    for la, lb in zip(a.layers, b.layers):
        np.testing.assert_array_equal(la.W, lb.W)
        assert not la.b.any()  # biases start at zero
    assert not np.array_equal(a.layers[0].W, c.layers[0].W)
    assert a.layers[0].W.std() == pytest.approx(math.sqrt(2 / 300), rel=0.03)        # He
    assert a.layers[1].W.std() == pytest.approx(math.sqrt(2 / 300), rel=0.03)        # Glorot
    assert initializers.default_for("leaky_relu") == "he_normal"
    assert initializers.default_for("sigmoid") == "glorot_uniform"
    explicit = cr.Sequential([cr.Dense(300, 200, init="lecun_normal"), cr.Dense(200, 10)])
    assert explicit.layers[0].W.std() == pytest.approx(math.sqrt(1 / 300), rel=0.03)


# ----- dropout ----------------------------------------------------------------------------------

def dropout_probe(p, width=4000, seed=0):
    """identity layer (W = I, x = 1) with dropout p, then a linear mse output with W2 = 0 and a
    target of −½: δ2 = 1, so dW2 = the dropped-out activations of the (single) sample."""
    model = cr.Sequential([cr.Dense(width, width, activation="identity", dropout=p),
                           cr.Dense(width, 1, activation="identity")],
                          loss="mse", dtype="float64", seed=seed)
    model.layers[0].W = np.eye(width)
    model.layers[1].W = 0.0
    return model


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_is_inverted_and_training_only(p):
    width = 4000
    model = dropout_probe(p, width)
    x, y = np.ones((1, width)), np.full((1, 1), -0.5)
    masks = []
    for _ in range(5):
        model._net.zero_grad()
        model._net.accumulate_gradients(x, y, 1.0, True)
        masks.append(model.layers[1].dW[:, 0].copy())
    masks = np.array(masks)
    keep = 1 / (1 - p)
    # Each unit is either dropped or scaled by 1/(1 − p) ...
    assert np.all(np.isclose(masks, 0) | np.isclose(masks, keep))
    # ... with probability p of being dropped, so the expected activation is unchanged.
    dropped = np.isclose(masks, 0).mean()
    assert dropped == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / masks.size))
    assert masks.mean() == pytest.approx(1.0, abs=4 * math.sqrt(p / (1 - p) / masks.size))
    assert not np.array_equal(masks[0], masks[1])  # a new mask every pass
    # Evaluation mode: no dropout, no scaling.
    model._net.zero_grad()
    model._net.accumulate_gradients(x, y, 1.0, False)
    np.testing.assert_array_equal(model.layers[1].dW[:, 0], np.ones(width))


def test_dropout_train_and_eval_differ_and_inference_is_deterministic():
    (X, y), _ = digits(300)
    model = mlp([64, 128, 10], seed=0)
    model.layers[0].dropout = 0.5
    model._net.dropout = [0.5, 0.0]
    model.fit(X, y, epochs=3, batch_size=32, lr=0.05, verbose=0)
    Xf, Yf = model._features(X), model._targets(y, X.shape[0])
    train_losses = []
    for _ in range(3):
        model._net.zero_grad()
        train_losses.append(model._net.accumulate_gradients(Xf, Yf, 0.0, True)[0])
    model._net.zero_grad()
    eval_loss = model._net.accumulate_gradients(Xf, Yf, 0.0, False)[0]
    assert len(set(train_losses)) == 3               # training passes draw new masks
    assert eval_loss == pytest.approx(model.evaluate(X, y)["loss"] * X.shape[0], rel=1e-5)
    assert all(abs(t - eval_loss) > 1e-3 * eval_loss for t in train_losses)
    np.testing.assert_array_equal(model.predict_proba(X), model.predict_proba(X))


def test_dropout_markers_and_seeded_masks():
    (X, y), _ = digits(200)

    def train(seed):
        model = cr.Sequential([cr.Dense(64, 64), cr.Dropout(0.3), cr.Dense(64, 10)], seed=seed)
        model.fit(X, y, epochs=2, batch_size=20, lr=0.05, verbose=0)
        return model
    a, b = train(1), train(1)
    assert a.layers[0].dropout == 0.3
    np.testing.assert_array_equal(a._net.params, b._net.params)


# ----- schedules ----------------------------------------------------------------------------

def lr_per_epoch(schedule, epochs=6, lr=0.1, n=64, batch_size=16, **fit):
    (X, y), _ = digits(n)
    model = mlp([64, 16, 10], seed=0, optimizer=cr.optimizers.SGD(lr=lr))
    return model.fit(X, y, epochs=epochs, batch_size=batch_size, verbose=0, schedule=schedule,
                     **fit)["lr"]


def test_epoch_schedules_follow_their_formulas():
    np.testing.assert_allclose(lr_per_epoch(None), [0.1] * 6)
    np.testing.assert_allclose(lr_per_epoch(schedules.StepDecay(2, gamma=0.5)),
                               [0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    np.testing.assert_allclose(lr_per_epoch(schedules.ExponentialDecay(0.9)),
                               [0.1 * 0.9 ** e for e in range(6)])
    # scikit-learn's invscaling: lr / (t + 1)^power_t with t the samples seen before the epoch.
    np.testing.assert_allclose(lr_per_epoch(schedules.InverseScaling(0.5), n=64),
                               [0.1] + [0.1 / (64 * e + 1) ** 0.5 for e in range(1, 6)])
    # Cosine per epoch = torch's CosineAnnealingLR stepped each epoch (T_max = 6).
    np.testing.assert_allclose(
        lr_per_epoch(schedules.CosineDecay(epochs=6, min_lr=0.01, per_step=False)),
        [0.01 + 0.09 * (1 + math.cos(math.pi * e / 6)) / 2 for e in range(6)])


def test_invscaling_matches_scikit_learn_optimizer():
    sgd_module = pytest.importorskip("sklearn.neural_network._stochastic_optimizers")
    ref = sgd_module.SGDOptimizer([np.zeros(1)], learning_rate_init=0.1, lr_schedule="invscaling",
                                  power_t=0.25)
    rates = [ref.learning_rate]
    for epoch in range(1, 5):
        ref.iteration_ends(64 * epoch)
        rates.append(ref.learning_rate)
    np.testing.assert_allclose(lr_per_epoch(schedules.InverseScaling(0.25), epochs=5), rates,
                               rtol=1e-12)


def test_schedule_continues_across_fit_calls_and_files(tmp_path):
    (X, y), _ = digits(64)
    whole = mlp([64, 16, 10], seed=0)
    whole.fit(X, y, epochs=4, batch_size=16, lr=0.1, verbose=0,
              schedule=schedules.CosineDecay(epochs=4, min_lr=0.001))
    parts = mlp([64, 16, 10], seed=0)
    schedule = schedules.CosineDecay(epochs=4, min_lr=0.001)
    parts.fit(X, y, epochs=2, batch_size=16, lr=0.1, verbose=0, schedule=schedule)
    parts.save(tmp_path / "half.npz")
    loaded = cr.load(tmp_path / "half.npz")
    assert isinstance(loaded.schedule, schedules.CosineDecay) and loaded.schedule.epoch == 2
    parts.fit(X, y, epochs=2, batch_size=16, verbose=0, schedule=schedule)
    loaded.fit(X, y, epochs=2, batch_size=16, verbose=0, schedule=loaded.schedule)
    np.testing.assert_array_equal(whole._net.params, parts._net.params)
    np.testing.assert_array_equal(whole._net.params, loaded._net.params)
    assert whole.history["lr"] == parts.history["lr"] == loaded.history["lr"]


def test_reduce_on_plateau_cuts_the_rate_when_the_metric_stalls():
    plateau = schedules.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2)
    for loss in [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.8]:
        plateau.end_epoch({"loss": loss}, 1, 1)
    # bad epochs 3 and 4 -> halve; 5 and 6 -> halve again; 7 improves.
    assert plateau.rate(0.1, 7, 7, 7) == pytest.approx(0.025)
    rates = lr_per_epoch(schedules.ReduceLROnPlateau(monitor="val_loss", patience=0,
                                                     min_delta=10.0), epochs=3,
                         validation_split=0.25)
    # Epoch 1 sets the reference; epoch 2 fails to beat it by 10 -> epoch 3 runs at lr/10.
    np.testing.assert_allclose(rates, [0.1, 0.1, 0.01])


def test_finished_cosine_schedule_with_zero_floor_is_refused():
    (X, y), _ = digits(32)
    model = mlp([64, 8, 10], seed=0)
    schedule = schedules.CosineDecay(epochs=1)
    model.fit(X, y, epochs=1, batch_size=16, lr=0.1, verbose=0, schedule=schedule)
    with pytest.raises(ValueError, match="min_lr"):
        model.fit(X, y, epochs=1, batch_size=16, verbose=0, schedule=schedule)
    # refused before training, not when the rate reaches 0
    model = mlp([64, 8, 10], seed=0)
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"after 4 epochs, and this fit would train past them "
                                         r"\(to epoch 6\)"):
        model.fit(X, y, epochs=6, batch_size=16, verbose=0,
                  schedule=schedules.CosineDecay(epochs=4))
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(before, model.get_weights()))


# ----- callbacks, history, early stopping -----------------------------------------------------

class Recorder(callbacks.Callback):
    def __init__(self):
        self.calls = []
        self.weights = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin", logs["batches_per_epoch"]))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch, logs["first_batch"], logs["n_batches"]))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, sorted(logs)))
        self.weights.append(np.array(self.model._net.params))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end",))


def test_callback_hooks_cover_every_batch_in_order():
    (X, y), (Xt, yt) = digits(500)
    rec = Recorder()
    model = mlp([64, 32, 10], seed=0)
    model.fit(X, y, epochs=2, batch_size=10, lr=0.05, verbose=0, callbacks=[rec],
              validation_data=(Xt, yt))
    assert rec.calls[0] == ("train_begin", 50) and rec.calls[-1] == ("train_end",)
    for epoch in range(2):
        i = rec.calls.index(("epoch_begin", epoch))
        j = next(k for k, c in enumerate(rec.calls) if c[0] == "epoch_end" and c[1] == epoch)
        chunks = rec.calls[i + 1:j]
        covered = [b for _, last, first, count in chunks for b in range(first, first + count)]
        assert covered == list(range(50))
        assert all(last == first + count - 1 for _, last, first, count in chunks)
        assert rec.calls[j][2] == sorted(["loss", "accuracy", "val_loss", "val_accuracy", "lr",
                                          "grad_norm", "time"])


def test_history_records_everything_the_issue_lists():
    (X, y), _ = digits(400)
    history = mlp([64, 32, 10], seed=0).fit(X, y, epochs=3, batch_size=32, lr=0.05, verbose=0,
                                            validation_split=0.25)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "time", "grad_norm"):
        assert len(history[key]) == 3, key
    assert all(g > 0 for g in history["grad_norm"]) and all(t > 0 for t in history["time"])
    assert history.epoch == [1, 2, 3]


def test_validation_split_holds_out_the_last_samples():
    (X, y), _ = digits(400)
    model = mlp([64, 32, 10], seed=0)
    history = model.fit(X, y, epochs=1, batch_size=32, lr=0.05, verbose=0,
                        validation_split=0.25)
    assert history["val_loss"][0] == pytest.approx(model.evaluate(X[300:], y[300:])["loss"])
    with pytest.raises(ValueError):
        model.fit(X, y, validation_split=0.2, validation_data=(X, y), verbose=0)
    with pytest.raises(ValueError):
        model.fit(X, y, validation_split=1.0, verbose=0)


def test_csv_logger_writes_the_history(tmp_path):
    (X, y), (Xt, yt) = digits(300)
    path = tmp_path / "log.csv"
    model = mlp([64, 16, 10], seed=0)
    history = model.fit(X, y, epochs=3, batch_size=32, lr=0.05, verbose=0,
                        validation_data=(Xt, yt), callbacks=[callbacks.CSVLogger(path)])
    rows = list(csv.DictReader(open(path)))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for key in ("loss", "val_accuracy", "lr", "grad_norm"):
        assert [float(r[key]) for r in rows] == history[key]
    model.fit(X, y, epochs=1, batch_size=32, verbose=0, validation_data=(Xt, yt),
              callbacks=[callbacks.CSVLogger(path, append=True)])
    rows = list(csv.DictReader(open(path)))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]  # the model's epoch numbers
    assert float(rows[-1]["val_loss"]) == history["val_loss"][-1]


def test_csv_logger_appends_under_the_files_own_columns(tmp_path):
    (X, y), (Xt, yt) = digits(300)
    path = tmp_path / "log.csv"
    model = mlp([64, 16, 10], seed=0)
    model.fit(X, y, epochs=2, batch_size=32, verbose=0, callbacks=[callbacks.CSVLogger(path)])
    with pytest.warns(RuntimeWarning, match=r"no column for \['val_loss', 'val_accuracy'\]"):
        model.fit(X, y, epochs=1, batch_size=32, verbose=0, validation_data=(Xt, yt),
                  callbacks=[callbacks.CSVLogger(path, append=True)])
    rows = list(csv.reader(open(path)))
    assert rows[0] == ["epoch", "loss", "accuracy", "lr", "grad_norm", "time"]
    assert all(len(row) == len(rows[0]) for row in rows)
    assert [row[0] for row in rows[1:]] == ["1", "2", "3"]
    assert float(rows[3][1]) == model.history["loss"][2]


def test_history_lists_line_up_with_the_epochs():
    """val_loss of a later fit with validation data sits at that fit's epochs, NaN before."""
    (X, y), (Xt, yt) = digits(200)
    model = mlp([64, 8, 10], seed=0)
    model.fit(X, y, epochs=2, batch_size=32, verbose=0)
    history = model.fit(X, y, epochs=2, batch_size=32, verbose=0, validation_data=(Xt, yt))
    assert history.epoch == [1, 2, 3, 4]
    assert all(len(values) == 4 for values in history.history.values())
    assert np.isnan(history["val_loss"][:2]).all() and np.isfinite(history["val_loss"][2:]).all()
    model.fit(X, y, epochs=1, batch_size=32, verbose=0)
    assert np.isnan(history["val_loss"][4]) and len(history["loss"]) == 5


def test_early_stopping_stops_and_restores_the_best_epoch():
    # A tiny training set and a large rate: the validation loss bottoms out, then climbs.
    (X, y), (Xt, yt) = digits(120)
    rec = Recorder()
    stop = callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    model = mlp([64, 128, 10], seed=0)
    history = model.fit(X, y, epochs=200, batch_size=8, lr=0.3, verbose=0,
                        validation_data=(Xt[:300], yt[:300]), callbacks=[rec, stop])
    val = history["val_loss"]
    best = int(np.argmin(val))
    assert len(val) < 200, "training did not stop early"
    assert len(val) == best + 1 + 3                   # stopped `patience` epochs after the best
    assert stop.best_epoch == best + 1 and stop.best == val[best]
    assert stop.stopped_epoch == len(val)
    np.testing.assert_array_equal(model._net.params, rec.weights[best])
    assert not np.array_equal(rec.weights[best], rec.weights[-1])
    assert model.evaluate(Xt[:300], yt[:300])["loss"] == pytest.approx(val[best], rel=1e-6)


def test_early_stopping_min_delta_and_mode():
    model = type("M", (), {"_epochs_done": 0, "stop_training": False,
                           "_net": type("N", (), {"params": np.zeros(1)})()})()
    stop = callbacks.EarlyStopping(monitor="val_accuracy", patience=2, min_delta=0.01)
    stop.set_model(model)
    stop.on_train_begin()
    for acc in [0.5, 0.505, 0.509]:  # improvements smaller than min_delta do not count
        model._epochs_done += 1
        stop.on_epoch_end(model._epochs_done - 1, {"val_accuracy": acc})
    assert model.stop_training and stop.best == 0.5 and stop.best_epoch == 1
    with pytest.raises(KeyError, match="validation"):
        stop.on_epoch_end(3, {"loss": 1.0})


def test_stop_training_from_a_lambda_callback():
    (X, y), _ = digits(100)
    model = mlp([64, 8, 10], seed=0)

    def stop_after_two(epoch, logs):
        if epoch == 1:
            model.stop_training = True
    history = model.fit(X, y, epochs=10, batch_size=32, lr=0.05, verbose=0,
                        callbacks=[callbacks.LambdaCallback(on_epoch_end=stop_after_two)])
    assert len(history) == 2


def test_progress_bar_is_a_callback(capsys):
    (X, y), _ = digits(100)
    mlp([64, 8, 10], seed=0).fit(X, y, epochs=2, batch_size=32, lr=0.05, verbose=1)
    err = capsys.readouterr().err
    assert "epoch 2/2" in err and "samples/s" in err and "loss" in err
    assert isinstance(callbacks.ProgressBar(), callbacks.Callback)


def test_l2_shrinks_weights_and_validates():
    (X, y), _ = digits(300)
    free, reg = mlp([64, 32, 10], seed=0), mlp([64, 32, 10], seed=0)
    free.fit(X, y, epochs=5, batch_size=32, lr=0.05, verbose=0)
    reg.fit(X, y, epochs=5, batch_size=32, lr=0.05, verbose=0, l2=0.05)
    assert np.linalg.norm(reg.layers[0].W) < np.linalg.norm(free.layers[0].W)
    with pytest.raises(ValueError):
        free.fit(X, y, l2=-1.0, verbose=0)
    with pytest.raises(ValueError):
        free.fit(X, y, max_grad_norm=0.0, verbose=0)


# ----- reproducibility ----------------------------------------------------------------------

def test_bit_identical_weights_with_one_and_two_threads():
    rng = np.random.default_rng(0)
    X = rng.random((1024, 196)).astype(np.float32)
    y = rng.integers(0, 10, 1024)
    before = cr.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 1):
            cr.set_num_threads(threads)
            model = cr.Sequential([cr.Dense(196, 256), cr.Dropout(0.2), cr.Dense(256, 128),
                                   cr.Dense(128, 10)], seed=42, optimizer=cr.optimizers.Adam())
            model.fit(X, y, epochs=2, batch_size=128, verbose=0)
            results.append(np.array(model._net.params))
    finally:
        cr.set_num_threads(before)
    np.testing.assert_array_equal(results[0], results[2])   # same thread count: identical
    np.testing.assert_array_equal(results[0], results[1])   # 1 vs 2 threads: identical


def test_pickle_and_deepcopy_give_an_independent_model_that_trains_on_identically():
    import copy
    import pickle

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    model = cr.Sequential([cr.Dense(5, 8), cr.Dropout(0.2), cr.Dense(8, 2)], optimizer="adam",
                          seed=3)
    model.fit(X, y, epochs=2, batch_size=16, verbose=0,
              schedule=cr.schedules.StepDecay(step_size=1, gamma=0.5))
    for twin in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        np.testing.assert_array_equal(twin.predict_proba(X), model.predict_proba(X))
        assert twin.history.history == model.history.history
        twin.layers[0].W = 0.0  # independent of the original
        assert np.abs(model.layers[0].W).sum() > 0
    twin = copy.deepcopy(model)
    model.fit(X, y, epochs=2, batch_size=16, verbose=0)
    twin.fit(X, y, epochs=2, batch_size=16, verbose=0)  # schedule, optimizer, dropout, shuffle
    np.testing.assert_array_equal(twin._net.params, model._net.params)
