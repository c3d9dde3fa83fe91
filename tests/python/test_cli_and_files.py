"""The command line end to end, and model files."""

import subprocess
import sys

import numpy as np
import pytest

import chainrule as cr


def run(*args):
    return subprocess.run(args, capture_output=True, text=True, timeout=600)


def test_python_m_chainrule_train_on_digits_and_save(tmp_path):
    path = tmp_path / "digits.npz"
    result = run(sys.executable, "-m", "chainrule", "train", "--epochs", "15", "--hidden",
                 "32", "--seed", "1", "--save", str(path))
    assert result.returncode == 0, result.stderr
    accuracy = float(result.stdout.split("test accuracy:")[1].split()[0])
    assert accuracy > 0.9
    assert "epoch 15/15" in result.stderr  # the progress bar
    (_, _), (Xt, yt) = cr.datasets.load_digits()
    model = cr.load(path)
    assert model.evaluate(Xt, yt)["accuracy"] == pytest.approx(accuracy, abs=1e-4)


def test_console_script_with_options(data_dir):
    result = run("chainrule", "train", "--dataset", "mnist", "--data-dir",
                 str(data_dir / "mnist"), "--hidden", "64", "--epochs", "1", "--batch-size",
                 "64", "--lr", "0.1", "--activation", "tanh", "--dtype", "float64", "--quiet")
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.split("test accuracy:")[1].split()[0]) > 0.9


def test_cli_rejects_bad_options():
    result = run(sys.executable, "-m", "chainrule", "train", "--hidden", "12,x")
    assert result.returncode == 2 and "--hidden" in result.stderr
    for option, value in (("--lr", "nan"), ("--lr", "inf"), ("--seed", "-5")):
        result = run(sys.executable, "-m", "chainrule", "train", option, value)
        assert result.returncode == 2 and option in result.stderr, (option, value)
    result = run(sys.executable, "-m", "chainrule", "train", "--dataset", "mnist",
                 "--data-dir", "/nonexistent-dir")
    assert result.returncode == 1 and "error" in result.stderr


def test_cli_checks_the_output_directory_before_training(tmp_path):
    result = run(sys.executable, "-m", "chainrule", "train", "--quiet", "--save",
                 str(tmp_path / "missing" / "m.npz"))
    assert result.returncode == 1
    assert "no such directory" in result.stderr and "test accuracy" not in result.stdout


def test_cli_reports_divergence_without_a_traceback():
    result = run(sys.executable, "-m", "chainrule", "train", "--lr", "1e30", "--quiet")
    assert result.returncode == 1
    assert result.stderr.startswith("chainrule: error: training diverged at epoch 1")
    assert "Traceback" not in result.stderr


def test_save_and_load_round_trip(tmp_path):
    (X, y), _ = cr.datasets.load_digits()
    model = cr.Sequential([cr.Dense(64, 16, activation="tanh"), cr.Dense(16, 10)], seed=0,
                          optimizer=cr.optimizers.Adam())
    model.fit(X, y, epochs=2, verbose=0)
    model.save(tmp_path / "m.npz")
    loaded = cr.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.forward(X), model.forward(X))
    assert loaded.optimizer == model.optimizer
    assert loaded.history.history == model.history.history
    # Both continue identically: optimizer state and shuffling position were saved.
    model.fit(X, y, epochs=1, verbose=0)
    loaded.fit(X, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(loaded.layers[0].W, model.layers[0].W)


def test_tampered_and_foreign_files_are_refused(tmp_path):
    model = cr.Sequential([cr.Dense(3, 2)], seed=0)
    path = tmp_path / "m.npz"
    model.save(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "bad.npz").write_bytes(bytes(data))
    with pytest.raises(ValueError):
        cr.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a chainrule model"):
        cr.load(tmp_path / "other.npz")
    (tmp_path / "trunc.npz").write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError):
        cr.load(tmp_path / "trunc.npz")
