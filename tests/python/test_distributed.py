"""Data-parallel training over MPI: equivalence with one process, reproducibility, sharded IDX
reading and the launch paths. The MPI runs are subprocesses under `mpirun`; without mpirun or
mpi4py these tests skip locally and fail when CI is set."""

import gzip
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule import distributed

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "mpi_train_script.py"
# Tolerances against a single process with the same global batch (3 epochs, 21 steps, SGD with
# momentum, L2 and clipping): only the order of the gradient sums differs.
ATOL = {"float64": 1e-12, "float32": 1e-5}  # measured here: 3.3e-16, 1.8e-7


def _require_mpi():
    missing = [what for what, ok in (("mpirun", shutil.which("mpirun")),
                                     ("mpi4py", importlib.util.find_spec("mpi4py"))) if not ok]
    if missing:
        message = (f"{' and '.join(missing)} not found: apt-get install -y libopenmpi-dev "
                   f"openmpi-bin && pip install mpi4py")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _env():
    # Open MPI refuses to run as root without these; they are ignored as another user and by
    # MPICH.
    return dict(os.environ, CHAINRULE_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1",
                OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def _mpirun(n):
    """mpirun -n n; Open MPI needs --oversubscribe for more ranks than cores (MPICH does not)."""
    version = subprocess.run(["mpirun", "--version"], capture_output=True, text=True)
    open_mpi = "open mpi" in (version.stdout + version.stderr).lower()
    return ["mpirun", "-n", str(n), *(["--oversubscribe"] if open_mpi else [])]


def _run(tmp_path, name, n=None, *args, timeout=120):
    """Run the helper script (under mpirun -n n if n) and return its saved result."""
    out = tmp_path / f"{name}.npz"
    cmd = [*(_mpirun(n) if n else []), sys.executable, str(SCRIPT), str(out), *args]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return dict(np.load(out))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Sequential.fit in one process, per dtype."""
    tmp = tmp_path_factory.mktemp("reference")
    return {dtype: _run(tmp, f"ref-{dtype}", None, "--reference", "--dtype", dtype)
            for dtype in ("float64", "float32")}


def test_one_rank_is_bit_identical_to_fit(tmp_path, reference):
    """distributed.fit on one process (accumulate → allreduce → apply_gradients) reproduces
    Sequential.fit bit for bit, dropout included."""
    _require_mpi()
    got = _run(tmp_path, "one", None)
    assert np.array_equal(got["params"], reference["float64"]["params"])
    assert np.array_equal(got["loss"], reference["float64"]["loss"])
    ref = _run(tmp_path, "ref-drop", None, "--reference", "--dropout", "0.3", "--optimizer", "adam")
    got = _run(tmp_path, "one-drop", None, "--dropout", "0.3", "--optimizer", "adam")
    assert np.array_equal(got["params"], ref["params"])
    assert got["rng_state"] == ref["rng_state"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_two_ranks_match_one_process(tmp_path, reference, dtype):
    _require_mpi()
    ref = reference[dtype]
    got = _run(tmp_path, "two", 2, "--dtype", dtype)
    np.testing.assert_allclose(got["params"], ref["params"], rtol=0, atol=ATOL[dtype])
    np.testing.assert_allclose(got["loss"], ref["loss"], rtol=1e-4 if dtype == "float32" else 1e-10)
    np.testing.assert_allclose(got["val_loss"], ref["val_loss"],
                               rtol=1e-4 if dtype == "float32" else 1e-10)
    np.testing.assert_array_equal(got["val_accuracy"], ref["val_accuracy"])


def test_four_ranks_match_one_process_and_repeat_bit_identically(tmp_path, reference):
    _require_mpi()
    first = _run(tmp_path, "four-a", 4)
    np.testing.assert_allclose(first["params"], reference["float64"]["params"], rtol=0,
                               atol=ATOL["float64"])
    second = _run(tmp_path, "four-b", 4)
    assert np.array_equal(first["params"], second["params"])
    assert np.array_equal(first["loss"], second["loss"])


def test_two_ranks_repeat_bit_identically_with_dropout_and_sharded_data(tmp_path):
    _require_mpi()
    args = ("--sharded", "--dropout", "0.2", "--optimizer", "adam", "--dtype", "float32")
    a = _run(tmp_path, "shard-a", 2, *args)
    b = _run(tmp_path, "shard-b", 2, *args)
    assert np.array_equal(a["params"], b["params"])
    assert a["val_accuracy"][-1] > 0.8  # it learns: 3 well separated blobs


@pytest.mark.parametrize("on_divergence", ["raise", "warn"])
def test_divergence_ends_every_rank_as_fit_does(tmp_path, on_divergence):
    """A learning rate that overflows float32 in the third epoch. One rank stops where
    Sequential.fit stops, with its message, weights and history; on two ranks every rank ends
    the same way (the script checks), none left waiting in an allreduce."""
    _require_mpi()
    args = ("--dtype", "float32", "--lr", "1e18", "--on-divergence", on_divergence)
    ending = {"raise": "raised", "warn": "warned"}[on_divergence]
    ref = _run(tmp_path, "div-ref", None, "--reference", *args)
    assert ref["ending"] == ending
    assert str(ref["message"]).startswith("training diverged at epoch 3, batch 2:")
    one = _run(tmp_path, "div-one", None, *args)
    assert (one["ending"], str(one["message"])) == (ending, str(ref["message"]))
    assert np.array_equal(one["params"], ref["params"])  # the last finite step's weights
    assert np.array_equal(one["loss"], ref["loss"])  # the two completed epochs
    two = _run(tmp_path, "div-two", 2, *args)
    assert two["ending"] == ending
    epoch = int(re.match(r"training diverged at epoch (\d+)", str(two["message"])).group(1))
    assert len(two["loss"]) == epoch - 1
    assert np.isfinite(two["params"]).all()


def test_cli_train_distributed(tmp_path):
    _require_mpi()
    save = tmp_path / "model.npz"
    cmd = [*_mpirun(2), sys.executable, "-m", "chainrule", "train", "--distributed", "--quiet",
           "--epochs", "2", "--save", str(save)]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("test accuracy") == 1  # rank 0 alone prints
    assert "2 ranks" in proc.stdout
    assert cr.load(save).evaluate(*cr.datasets.load_digits()[1])["accuracy"] > 0.7


# ----- no MPI needed ----------------------------------------------------------------------------
def test_missing_mpi4py_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r"pip install 'chainrule\[mpi\]'"):
        distributed.get_comm()
    with pytest.raises(ImportError, match="mpirun"):
        distributed.fit(cr.Sequential([cr.Dense(2, 2)]), np.zeros((4, 2)), [0, 1, 0, 1])


def test_shard_range_tiles_the_rows():
    for n in (0, 1, 5, 203, 1000):
        for size in (1, 2, 3, 4, 7):
            ranges = [distributed.shard_range(n, r, size) for r in range(size)]
            assert ranges[0][0] == 0 and ranges[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
            assert max(b - a for a, b in ranges) - min(b - a for a, b in ranges) <= 1
    X = np.arange(20).reshape(10, 2)
    assert np.array_equal(distributed.shard(X, rank=1, size=3), X[3:6])
    with pytest.raises(ValueError):
        distributed.shard_range(10, 3, 3)


def _write_idx(path, array, compress):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int16): 0x0B, np.dtype(np.float32): 0x0D}
    head = bytes([0, 0, codes[array.dtype], array.ndim])
    head += np.array(array.shape, dtype=">u4").tobytes()
    raw = head + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_rows_matches_read_idx(tmp_path, compress):
    rng = np.random.default_rng(0)
    for dtype, shape in ((np.uint8, (37, 4, 5)), (np.int16, (11,)), (np.float32, (9, 3))):
        array = (rng.random(shape) * 100).astype(dtype)
        path = tmp_path / f"a-{np.dtype(dtype).name}.idx"
        _write_idx(path, array, compress)
        full = cr.datasets.read_idx(path)
        assert distributed.idx_shape(path) == shape
        for start, stop in ((0, shape[0]), (3, 7), (shape[0] - 1, shape[0]), (4, 4)):
            part = distributed.read_idx_rows(path, start, stop)
            assert part.dtype == full.dtype and np.array_equal(part, full[start:stop])
        with pytest.raises(ValueError, match="outside"):
            distributed.read_idx_rows(path, 2, shape[0] + 1)


def test_load_idx_shard_on_mnist(data_dir):
    """Each of 3 ranks reads only its rows of the real (gzip) MNIST training files; together
    they are load_mnist's arrays."""
    d = data_dir / "mnist"
    (X, y), _ = cr.datasets.load_mnist(d)
    images, labels = d / "train-images-idx3-ubyte.gz", d / "train-labels-idx1-ubyte.gz"
    parts = [distributed.load_idx_shard(images, labels, rank=r, size=3) for r in (0, 2)]
    assert parts[0][0].shape == (20000, 784) and parts[0][0].dtype == np.float32
    assert np.array_equal(parts[0][0], X[:20000]) and np.array_equal(parts[0][1], y[:20000])
    assert np.array_equal(parts[1][0], X[40000:]) and np.array_equal(parts[1][1], y[40000:])
