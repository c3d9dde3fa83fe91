"""Tests for chainrule.datasets: packaged digits, the IDX reader, MNIST loading
from a directory, and the download/cache path against a local HTTP server.

Tests that need the real MNIST / Fashion-MNIST files read them from the
directory in $CHAINRULE_TEST_DATA (holding mnist/ and fashion-mnist/). Without
it they skip, except under CI (CI set), where they fail.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import http.server
import os
import shutil
import socket
import struct
import threading
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from chainrule import datasets
from chainrule.datasets import (
    ChecksumError,
    DownloadError,
    load,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    read_idx,
)
from chainrule.datasets import _mnist

FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# --------------------------------------------------------------------------- helpers


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def data_root() -> Path:
    value = os.environ.get("CHAINRULE_TEST_DATA")
    if not value:
        if _in_ci():
            pytest.fail(
                "CHAINRULE_TEST_DATA is not set, but CI is: CI must set it to the "
                "shared data directory that holds mnist/ and fashion-mnist/"
            )
        pytest.skip("CHAINRULE_TEST_DATA is not set (directory holding mnist/ and fashion-mnist/)")
    root = Path(value)
    for sub in ("mnist", "fashion-mnist"):
        if not (root / sub).is_dir():
            pytest.fail(f"CHAINRULE_TEST_DATA={value}: no {sub}/ directory in it")
    return root


@pytest.fixture(scope="session")
def mnist_dir(data_root) -> Path:
    return data_root / "mnist"


@pytest.fixture(scope="session")
def fashion_dir(data_root) -> Path:
    return data_root / "fashion-mnist"


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    return load_mnist(mnist_dir)


def _src(directory: Path, name: str) -> Path:
    for p in (directory / name, directory / (name + ".gz")):
        if p.is_file():
            return p
    raise AssertionError(f"{name} not in {directory}")


def _uncompressed(directory: Path, name: str) -> bytes:
    raw = _src(directory, name).read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def _copy_gz(src_dir: Path, dst_dir: Path, names=FILES) -> None:
    """Copy the files as .gz (compressing plain ones) into dst_dir."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        p = _src(src_dir, name)
        if p.suffix == ".gz":
            shutil.copyfile(p, dst_dir / p.name)
        else:
            (dst_dir / (name + ".gz")).write_bytes(gzip.compress(p.read_bytes(), compresslevel=1))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _assert_equal_splits(a, b):
    for (xa, ya), (xb, yb) in zip(a, b):
        assert xa.dtype == xb.dtype and xa.shape == xb.shape
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)


class _Server:
    def __init__(self, directory: Path):
        root = str(directory)

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=root, **kwargs)

            def do_GET(self):
                self.server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.requests = []
        host, port = self.httpd.server_address[:2]
        self.url = f"http://{host}:{port}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def requests(self):
        return list(self.httpd.requests)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def serve(monkeypatch):
    """serve(directory) -> a running server over 127.0.0.1 (ephemeral port)."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    servers = []

    def start(directory):
        s = _Server(Path(directory))
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


@pytest.fixture
def no_env(monkeypatch):
    for var in ("CHAINRULE_DATA", "CHAINRULE_MNIST_URL", "CHAINRULE_FASHION_MNIST_URL"):
        monkeypatch.delenv(var, raising=False)


def _dead_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/"


# --------------------------------------------------------------------------- digits

DIGITS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_digits_shapes_dtypes_ranges():
    (Xtr, ytr), (Xte, yte) = load_digits()
    assert Xtr.shape == (1442, 64) and Xte.shape == (355, 64)
    assert ytr.shape == (1442,) and yte.shape == (355,)
    assert Xtr.dtype == np.float32 and Xte.dtype == np.float32
    assert ytr.dtype == np.int64 and yte.dtype == np.int64
    X = np.concatenate([Xtr, Xte])
    assert X.min() == 0.0 and X.max() == 1.0
    # pixel counts 0..16 divided by 16: every value is an exact sixteenth
    k = X * 16
    np.testing.assert_array_equal(k, np.round(k))
    assert len(np.unique(k)) == 17
    # not degenerate: images differ, and have ink in the middle
    assert len(np.unique(X, axis=0)) > 1700
    assert X.reshape(-1, 8, 8)[:, 2:6, 2:6].mean() > 0.2
    for a in (Xtr, ytr, Xte, yte):
        assert a.flags.writeable and a.flags.c_contiguous


def test_digits_label_counts():
    (_, ytr), (_, yte) = load_digits()
    assert set(np.unique(ytr)) == set(range(10)) == set(np.unique(yte))
    assert np.bincount(np.concatenate([ytr, yte])).tolist() == DIGITS_COUNTS
    assert np.bincount(ytr).tolist() == [143, 146, 142, 147, 145, 146, 145, 144, 140, 144]
    assert np.bincount(yte).tolist() == [35, 36, 35, 36, 36, 36, 36, 35, 34, 36]


def test_digits_content_checksum():
    # SHA-256 of the uint8 arrays, as recorded in datasets/data/README.md
    from chainrule.datasets._digits import _read_digits_file
    images, labels = _read_digits_file()
    assert _sha(images.tobytes()) == "8f26b2bd9d135c256808f68f14fdabddde6d9c7f869ae419704b051f0f14b3b3"
    assert _sha(labels.tobytes()) == "8ba4f891220f5e4c9c819638d1602d74b83618f167043c6da52a2a247841ddf0"


def test_digits_options_and_determinism():
    (a, ya), (b, yb) = load_digits(flatten=False, dtype=np.float64)
    assert a.shape == (1442, 8, 8) and b.shape == (355, 8, 8) and a.dtype == np.float64
    (c, yc), (d, yd) = load_digits()
    np.testing.assert_array_equal(a.reshape(1442, 64), c)
    np.testing.assert_array_equal(b.reshape(355, 64), d)
    c[:] = -1  # results are fresh arrays: changing one does not leak into the next call
    (c2, yc2), _ = load_digits()
    np.testing.assert_array_equal(c2, a.reshape(1442, 64).astype(np.float32))
    np.testing.assert_array_equal(yc2, ya)
    with pytest.raises(ValueError, match="floating"):
        load_digits(dtype=np.int32)


def test_digits_match_scikit_learn_copy():
    sk = pytest.importorskip("sklearn.datasets")
    ref = sk.load_digits()
    (Xtr, ytr), (Xte, yte) = load_digits(dtype=np.float64, flatten=False)
    test = np.zeros(len(ref.target), dtype=bool)
    for c in range(10):  # every fifth sample of each class, in file order
        test[np.flatnonzero(ref.target == c)[4::5]] = True
    np.testing.assert_array_equal(Xtr * 16, ref.images[~test])
    np.testing.assert_array_equal(Xte * 16, ref.images[test])
    np.testing.assert_array_equal(ytr, ref.target[~test])
    np.testing.assert_array_equal(yte, ref.target[test])


def test_package_ships_data_and_licence_and_never_imports_sklearn():
    pkg = resources.files("chainrule.datasets")
    data = pkg.joinpath("data")
    assert data.joinpath("digits.npz").is_file()
    licence = data.joinpath("LICENSE-digits.txt").read_text(encoding="utf-8")
    assert "CC BY 4.0" in licence and "Alpaydin" in licence and "Kaynak" in licence
    sources = [p for p in Path(datasets.__file__).parent.glob("*.py")]
    assert len(sources) >= 3
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] == "sklearn" for n in names), path


# --------------------------------------------------------------------------- IDX reader

IDX_CASES = [
    (0x08, ">u1", np.array([0, 1, 127, 128, 255], dtype=np.uint8).reshape(5)),
    (0x09, ">i1", np.array([-128, -1, 0, 1, 127, 5], dtype=np.int8).reshape(2, 3)),
    (0x0B, ">i2", np.array([-32768, -2, 0, 258, 32767, 7], dtype=np.int16).reshape(3, 2)),
    (0x0C, ">i4", np.arange(-12, 12, dtype=np.int32).reshape(2, 3, 4) * 100_000_007),
    (0x0D, ">f4", np.array([1.5, -2.25e10, 0.0, np.inf, 3.0e-38, -7.0], dtype=np.float32).reshape(1, 6)),
    (0x0E, ">f8", np.linspace(-1e300, 1e300, 24).reshape(2, 2, 2, 3)),
]


def _idx_bytes(code: int, be_dtype: str, arr: np.ndarray) -> bytes:
    head = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.astype(be_dtype).tobytes()


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("code,be,arr", IDX_CASES, ids=[c[1] for c in IDX_CASES])
def test_read_idx_dtypes(tmp_path, code, be, arr, gz):
    blob = _idx_bytes(code, be, arr)
    path = tmp_path / "data.idx"
    path.write_bytes(gzip.compress(blob) if gz else blob)
    out = read_idx(path)
    assert out.shape == arr.shape
    assert out.dtype == arr.dtype and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)
    assert out.flags.writeable
    assert read_idx(str(path)).shape == arr.shape  # str paths too


def test_read_idx_detects_gzip_by_content_not_name(tmp_path):
    arr = np.arange(12, dtype=np.int16).reshape(3, 4) - 6
    blob = _idx_bytes(0x0B, ">i2", arr)
    (tmp_path / "compressed.idx").write_bytes(gzip.compress(blob))
    (tmp_path / "plain.gz").write_bytes(blob)
    np.testing.assert_array_equal(read_idx(tmp_path / "compressed.idx"), arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "plain.gz"), arr)


def test_read_idx_empty_dimension(tmp_path):
    (tmp_path / "e").write_bytes(struct.pack(">BBBBII", 0, 0, 0x0D, 2, 0, 5))
    out = read_idx(tmp_path / "e")
    assert out.shape == (0, 5) and out.dtype == np.float32


@pytest.mark.parametrize(
    "blob,match",
    [
        (b"\x00\x00", "too short"),
        (b"\x01\x00\x08\x01\x00\x00\x00\x01\x07", "magic"),
        (b"\x00\x01\x08\x01\x00\x00\x00\x01\x07", "magic"),
        (b"\x00\x00\x0a\x01\x00\x00\x00\x01\x07", "magic"),  # 0x0A is no IDX type
        (b"PK\x03\x04 not idx at all", "magic"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00", "truncated IDX header"),
        (struct.pack(">BBBBI", 0, 0, 0x08, 1, 10) + bytes(9), "truncated IDX data"),
        (struct.pack(">BBBBII", 0, 0, 0x0C, 2, 2, 2) + bytes(15), "truncated IDX data"),
        (struct.pack(">BBBBI", 0, 0, 0x08, 1, 10) + bytes(11), "size mismatch"),
    ],
    ids=["short", "magic0", "magic1", "badtype", "zip", "header", "data-u8", "data-i32", "trailing"],
)
@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_read_idx_rejects_bad_files(tmp_path, blob, match, gz):
    path = tmp_path / "bad"
    path.write_bytes(gzip.compress(blob) if gz else blob)
    with pytest.raises(ValueError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_rejects_truncated_gzip(tmp_path):
    arr = np.arange(5000, dtype=np.int32)
    gz = gzip.compress(_idx_bytes(0x0C, ">i4", arr))
    path = tmp_path / "cut.gz"
    path.write_bytes(gz[: len(gz) // 2])
    with pytest.raises(ValueError, match="gzip"):
        read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


# --------------------------------------------------------------------------- MNIST from a directory


def test_hardcoded_checksums_match_official_sums_and_files(data_root):
    for spec in (_mnist.MNIST, _mnist.FASHION_MNIST):
        sums_file = data_root / spec.name / "SHA256SUMS.uncompressed"
        official = {}
        for line in sums_file.read_text().splitlines():
            if line.strip():
                digest, name = line.split()
                official[name.lstrip("*")] = digest
        assert official == spec.sha256, spec.name
        for name in FILES:
            assert _sha(_uncompressed(data_root / spec.name, name)) == spec.sha256[name]


def test_load_mnist_from_path(mnist):
    (Xtr, ytr), (Xte, yte) = mnist
    assert Xtr.shape == (60000, 784) and Xte.shape == (10000, 784)
    assert ytr.shape == (60000,) and yte.shape == (10000,)
    assert Xtr.dtype == Xte.dtype == np.float32
    assert ytr.dtype == yte.dtype == np.int64
    assert Xtr.min() == 0.0 and Xtr.max() == 1.0 and Xte.min() == 0.0 and Xte.max() == 1.0
    assert np.bincount(ytr).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(yte).tolist() == MNIST_TEST_COUNTS
    assert ytr[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert yte[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert 0.12 < Xtr.mean() < 0.14  # the well-known MNIST pixel mean, ~0.1307


def test_load_mnist_matches_read_idx_and_options(mnist, mnist_dir):
    raw = read_idx(_src(mnist_dir, "t10k-images-idx3-ubyte"))
    assert raw.shape == (10000, 28, 28) and raw.dtype == np.uint8
    (Xtr, ytr), (Xte, yte) = load_mnist(mnist_dir, dtype=np.float64, flatten=False)
    assert Xtr.shape == (60000, 28, 28) and Xte.shape == (10000, 28, 28) and Xte.dtype == np.float64
    np.testing.assert_array_equal(Xte * 255, raw)
    np.testing.assert_array_equal(Xte.reshape(10000, 784).astype(np.float32), mnist[1][0])
    np.testing.assert_array_equal(read_idx(_src(mnist_dir, "train-labels-idx1-ubyte")), ytr)


def test_load_fashion_mnist_from_path(fashion_dir):
    (Xtr, ytr), (Xte, yte) = load_fashion_mnist(fashion_dir)
    assert Xtr.shape == (60000, 784) and Xte.shape == (10000, 784)
    assert Xtr.dtype == np.float32 and ytr.dtype == np.int64
    assert Xtr.min() == 0.0 and Xtr.max() == 1.0
    assert np.bincount(ytr).tolist() == [6000] * 10
    assert np.bincount(yte).tolist() == [1000] * 10
    assert 0.27 < Xtr.mean() < 0.30  # Fashion-MNIST pixel mean, ~0.286


def test_load_mnist_plain_and_gz_files(tmp_path, mnist_dir, mnist):
    d = tmp_path / "mixed"
    d.mkdir()
    for i, name in enumerate(FILES):
        data = _uncompressed(mnist_dir, name)
        if i % 2:
            (d / name).write_bytes(data)
        else:
            (d / (name + ".gz")).write_bytes(gzip.compress(data, compresslevel=1))
    _assert_equal_splits(load_mnist(d), mnist)


@pytest.mark.parametrize("as_gz", [False, True], ids=["plain", "gzip"])
def test_load_mnist_tampered_copy_raises(tmp_path, mnist_dir, as_gz):
    d = tmp_path / "tampered"
    _copy_gz(mnist_dir, d)
    victim = "t10k-labels-idx1-ubyte"
    data = bytearray(_uncompressed(mnist_dir, victim))
    data[100] = (data[100] + 1) % 10  # still a valid IDX file, just one wrong label
    (d / (victim + ".gz")).unlink()
    if as_gz:
        (d / (victim + ".gz")).write_bytes(gzip.compress(bytes(data)))
    else:
        (d / victim).write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=victim) as info:
        load_mnist(d)
    assert "SHA-256" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_load_mnist_wrong_dataset_in_directory(fashion_dir):
    with pytest.raises(ChecksumError, match="train-images-idx3-ubyte"):
        load_mnist(fashion_dir)


def test_load_mnist_missing_file_in_path(tmp_path, mnist_dir):
    d = tmp_path / "partial"
    _copy_gz(mnist_dir, d, names=FILES[:3])
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_mnist(d)


def test_load_dispatcher(mnist_dir, mnist):
    (Xtr, ytr), _ = load("digits")
    assert Xtr.shape == (1442, 64)
    (Xtr, _), _ = load("Digits", flatten=False, dtype=np.float64)
    assert Xtr.shape == (1442, 8, 8) and Xtr.dtype == np.float64
    _assert_equal_splits(load("mnist", mnist_dir), mnist)
    (_, yf), _ = load("fashion_mnist", mnist_dir.parent / "fashion-mnist")
    assert np.bincount(yf).tolist() == [6000] * 10
    assert set(datasets.DATASETS) == {"digits", "mnist", "fashion-mnist"}
    with pytest.raises(ValueError, match="unknown dataset"):
        load("cifar10")
    with pytest.raises(ValueError, match="no path"):
        load("digits", mnist_dir)


# --------------------------------------------------------------------------- download and cache


def _expected_requests():
    return sorted(f"/{name}.gz" for name in FILES)


def test_download_into_empty_cache_then_use_cache(tmp_path, serve, mnist_dir, mnist, no_env):
    server = serve(mnist_dir)
    cache = tmp_path / "cache" / "mnist"  # does not exist yet
    first = load_mnist(cache_dir=cache, base_url=server.url)
    _assert_equal_splits(first, mnist)
    assert sorted(server.requests) == _expected_requests()
    assert sorted(p.name for p in cache.iterdir()) == sorted(n + ".gz" for n in FILES)
    for name in FILES:
        assert (cache / (name + ".gz")).read_bytes() == _src(mnist_dir, name).read_bytes()

    second = load_mnist(cache_dir=cache, base_url=server.url)
    _assert_equal_splits(second, mnist)
    assert len(server.requests) == 4  # nothing fetched the second time
    third = load_mnist(cache_dir=cache, download=False, base_url=_dead_url())
    assert np.array_equal(third[1][1], mnist[1][1])


def test_download_only_missing_files(tmp_path, serve, mnist_dir, mnist, no_env):
    server = serve(mnist_dir)
    cache = tmp_path / "cache"
    _copy_gz(mnist_dir, cache, names=FILES[:2])
    _assert_equal_splits(load_mnist(cache_dir=cache, base_url=server.url.rstrip("/")), mnist)
    assert sorted(server.requests) == sorted(f"/{n}.gz" for n in FILES[2:])


def test_download_uses_env_vars(tmp_path, serve, mnist_dir, mnist, monkeypatch):
    server = serve(mnist_dir)
    monkeypatch.setenv("CHAINRULE_DATA", str(tmp_path / "root"))
    monkeypatch.setenv("CHAINRULE_MNIST_URL", server.url)
    assert datasets.default_cache_dir("mnist") == tmp_path / "root" / "mnist"
    _assert_equal_splits(load_mnist(), mnist)
    assert sorted(server.requests) == _expected_requests()
    assert sorted(p.name for p in (tmp_path / "root" / "mnist").iterdir()) == sorted(n + ".gz" for n in FILES)
    load_mnist(download=False)
    assert len(server.requests) == 4


def test_default_cache_dir_without_env(monkeypatch, tmp_path):
    monkeypatch.delenv("CHAINRULE_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert datasets.default_cache_dir("fashion-mnist") == tmp_path / ".cache" / "chainrule" / "fashion-mnist"


def test_download_false_with_missing_files(tmp_path, serve, mnist_dir, no_env):
    server = serve(mnist_dir)
    cache = tmp_path / "empty"
    with pytest.raises(FileNotFoundError, match="download=False"):
        load_mnist(cache_dir=cache, download=False, base_url=server.url)
    assert server.requests == []
    assert not cache.exists()


def _corrupt_dir(tmp_path: Path, mnist_dir: Path, victim: str, how: str) -> Path:
    d = tmp_path / "bad-mirror"
    _copy_gz(mnist_dir, d)
    gz = d / (victim + ".gz")
    if how == "altered":  # a valid gzip whose content differs in one byte
        data = bytearray(_uncompressed(mnist_dir, victim))
        data[-1] ^= 0xFF
        gz.write_bytes(gzip.compress(bytes(data), compresslevel=1))
    elif how == "truncated":  # the download stops half-way
        raw = gz.read_bytes()
        gz.write_bytes(raw[: len(raw) // 2])
    else:  # an error page instead of the file
        gz.write_bytes(b"<html><body>Service unavailable</body></html>")
    return d


@pytest.mark.parametrize(
    "victim,how",
    [
        ("train-images-idx3-ubyte", "altered"),
        ("t10k-labels-idx1-ubyte", "truncated"),
        ("train-labels-idx1-ubyte", "html"),
    ],
)
def test_corrupt_download_fails_and_leaves_nothing(tmp_path, serve, mnist_dir, mnist, victim, how, no_env):
    server = serve(_corrupt_dir(tmp_path, mnist_dir, victim, how))
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError, match=victim):
        load_mnist(cache_dir=cache, base_url=server.url)
    assert f"/{victim}.gz" in server.requests
    left = sorted(p.name for p in cache.iterdir())
    assert not any(n.startswith(victim) or victim in n for n in left), left
    assert not any(n.endswith(".part") or n.startswith(".") for n in left), left
    # files downloaded before the failure are complete, verified copies
    order = list(FILES)
    assert left == sorted(n + ".gz" for n in order[: order.index(victim)])
    for n in left:
        assert _sha(gzip.decompress((cache / n).read_bytes())) == _mnist.MNIST.sha256[n[:-3]]
    # a good mirror afterwards completes the cache
    good = serve(mnist_dir)
    _assert_equal_splits(load_mnist(cache_dir=cache, base_url=good.url), mnist)
    assert sorted(p.name for p in cache.iterdir()) == sorted(n + ".gz" for n in FILES)


def test_download_network_failures(tmp_path, serve, no_env):
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="train-images-idx3-ubyte") as info:
        load_mnist(cache_dir=cache, base_url=_dead_url())
    assert isinstance(info.value, OSError)
    (tmp_path / "nothing-here").mkdir()
    empty = serve(tmp_path / "nothing-here")
    with pytest.raises(DownloadError, match="404"):
        load_mnist(cache_dir=cache, base_url=empty.url)
    assert empty.requests == ["/train-images-idx3-ubyte.gz"]
    assert list(cache.iterdir()) == []


def test_download_falls_back_to_next_mirror(tmp_path, serve, mnist_dir, mnist, no_env):
    server = serve(mnist_dir)
    cache = tmp_path / "cache"
    _assert_equal_splits(load_mnist(cache_dir=cache, base_url=[_dead_url(), server.url]), mnist)
    assert sorted(server.requests) == _expected_requests()
