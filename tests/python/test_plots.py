"""chainrule.plots and the CLI's --plot / plot: each figure rendered to PNG with Agg, non-blank
and of the right size; and chainrule works, with a clear message, without matplotlib."""

import subprocess
import sys

import numpy as np
import pytest

import chainrule as cr
from chainrule import cli, plots

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
from matplotlib.image import imread  # noqa: E402


def check_png(path, width, height):
    """The PNG is width × height pixels and shows something: ink, in more than one colour."""
    image = imread(str(path))
    assert image.shape[:2] == (height, width)
    rgb = image[..., :3]
    ink = np.any(rgb < 0.9, axis=-1).mean()
    assert ink > 0.01, f"{path} is (nearly) blank: {ink:.4f} of the pixels are drawn"
    assert np.unique(rgb.reshape(-1, 3).round(2), axis=0).shape[0] > 10
    return image


@pytest.fixture(scope="module")
def digits_model():
    (X, y), (Xt, yt) = cr.datasets.load_digits()
    model = cr.Sequential([cr.Dense(64, 16, activation="relu"), cr.Dense(16, 10)], seed=0)
    model.fit(X, y, epochs=3, lr=0.1, validation_data=(Xt, yt), verbose=0)
    return model


@pytest.fixture(scope="module")
def small_model():
    rng = np.random.default_rng(0)
    model = cr.Sequential([cr.Dense(3, 5, activation="tanh"), cr.Dense(5, 2, activation="sigmoid")],
                          loss="binary_cross_entropy", seed=0)
    X, Y = rng.normal(size=(12, 3)), (rng.random((12, 2)) > 0.5).astype(np.float32)
    model.fit(X, Y, epochs=4, lr=0.5, verbose=0)
    return model, X, Y


def test_history_curves(digits_model, tmp_path):
    fig = plots.plot_history(digits_model.history, path=tmp_path / "h.png", dpi=50)
    check_png(tmp_path / "h.png", *(fig.get_size_inches() * 50).astype(int))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:3] == ["loss", "accuracy", "learning rate"]
    assert [line.get_label() for line in fig.axes[0].lines] == ["train", "validation"]
    # a model and a plain dict work too, and a dict without validation draws one line
    plots.plot_history(digits_model, path=tmp_path / "m.png", figsize=(6, 3), dpi=40)
    check_png(tmp_path / "m.png", 240, 120)
    fig = plots.plot_history({"loss": [1.0, 0.5, 0.25]}, path=tmp_path / "d.png", figsize=(4, 3))
    check_png(tmp_path / "d.png", 400, 300)
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 1


def test_history_errors():
    with pytest.raises(ValueError, match="empty"):
        plots.plot_history(cr.History())
    with pytest.raises(TypeError):
        plots.plot_history([1, 2, 3])


def test_first_layer_weights_as_images(digits_model, tmp_path):
    plots.plot_weights(digits_model, path=tmp_path / "w.png", figsize=(5, 5), dpi=60)
    check_png(tmp_path / "w.png", 300, 300)
    fig = plots.plot_weights(digits_model, shape=(4, 16), max_neurons=6, scale="global")
    assert sum(1 for ax in fig.axes if ax.images) == 6
    assert fig.axes[0].images[0].get_array().shape == (4, 16)
    small = cr.Sequential([cr.Dense(10, 3)], seed=0)
    with pytest.raises(ValueError, match="shape"):
        plots.plot_weights(small)


def test_network_diagram_weights_and_gradients(small_model, tmp_path):
    model, X, Y = small_model
    fig = plots.plot_network(model, path=tmp_path / "n.png", figsize=(6, 4), dpi=50)
    check_png(tmp_path / "n.png", 300, 200)
    lines = fig.axes[0].collections[:2]  # one LineCollection per layer of connections
    assert [len(c.get_segments()) for c in lines] == [15, 10]
    widths = np.sort(lines[0].get_linewidths())
    W = np.abs(model.layers[0].W)
    np.testing.assert_allclose(widths, np.sort(0.2 + 3.0 * W.ravel() / max(
        np.abs(model.layers[0].W).max(), np.abs(model.layers[1].W).max())), rtol=1e-5)
    fig = plots.plot_network(model, X, Y, gradients=True, path=tmp_path / "g.png", dpi=50)
    check_png(tmp_path / "g.png", *(fig.get_size_inches() * 50).astype(int))
    assert "∂C/∂W" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="needs X and y"):
        plots.plot_network(model, gradients=True)


def test_network_diagram_of_a_wide_layer_is_truncated(digits_model, tmp_path):
    fig = plots.plot_network(digits_model, path=tmp_path / "wide.png", max_neurons=8, dpi=40)
    check_png(tmp_path / "wide.png", *(fig.get_size_inches() * 40).astype(int))
    assert [len(c.get_segments()) for c in fig.axes[0].collections[:2]] == [64, 64]  # 8 of 64, 8 of 16, 8 of 10 drawn
    assert "⋮" in [t.get_text() for t in fig.axes[0].texts]


def test_model_summary(digits_model, small_model, tmp_path):
    plots.plot_model(digits_model, path=tmp_path / "s.png", figsize=(10, 7), dpi=50)
    check_png(tmp_path / "s.png", 500, 350)
    untrained = cr.Sequential([cr.Dense(3, 4), cr.Dense(4, 2)], seed=0)
    plots.plot_model(untrained, path=tmp_path / "u.png", figsize=(6, 4), dpi=50)
    check_png(tmp_path / "u.png", 300, 200)


def test_cli_train_plot_and_plot_subcommand(tmp_path, capsys):
    png, saved = tmp_path / "run.png", tmp_path / "model.npz"
    assert cli.main(["train", "--epochs", "2", "--hidden", "16", "--quiet", "--plot", str(png),
                     "--save", str(saved)]) == 0
    check_png(png, 1400, 900)
    assert f"plotted to {png}" in capsys.readouterr().out
    assert cr.load(saved).history["val_accuracy"]  # --plot trains with validation data
    assert cli.main(["plot", str(saved)]) == 0
    check_png(tmp_path / "model.png", 1400, 900)
    for kind in ("history", "weights", "network"):
        out = tmp_path / f"{kind}.png"
        assert cli.main(["plot", str(saved), "--kind", kind, "-o", str(out), "--dpi", "50"]) == 0
        check_png(out, *imread(str(out)).shape[1::-1])
    assert cli.main(["plot", str(tmp_path / "missing.npz")]) == 1
    assert "chainrule: error" in capsys.readouterr().err


def test_without_matplotlib_import_works_and_plots_say_how_to_install(monkeypatch):
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "import chainrule, chainrule.plots\n"
            "try:\n"
            "    chainrule.plots.plot_history({'loss': [1.0]})\n"
            "except ImportError as e:\n"
            "    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install chainrule[plot]" in out.stdout
    code = "import chainrule, sys; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # import chainrule never loads matplotlib
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert cli.main(["train", "--plot", "x.png", "--quiet"]) == 1  # fails before training


def test_history_plot_puts_validation_points_at_their_epochs():
    (X, y), (Xt, yt) = cr.datasets.load_digits()
    model = cr.Sequential([cr.Dense(64, 16), cr.Dense(16, 10)], seed=0)
    model.fit(X[:200], y[:200], epochs=3, lr=0.1, verbose=0)
    model.fit(X[:200], y[:200], epochs=2, lr=0.1, validation_data=(Xt, yt), verbose=0)
    figure = plots.plot_history(model)
    validation = [line for line in figure.axes[0].get_lines()
                  if line.get_label() == "validation"][0]
    x, values = validation.get_xdata(), validation.get_ydata()
    assert list(x) == [1, 2, 3, 4, 5]
    assert np.isnan(values[:3]).all() and np.isfinite(values[3:]).all()
