"""MNIST and Fashion-MNIST: read local IDX files or download them into a cache.

Every file is checked against the SHA-256 of its *uncompressed* content, so
the same checksums serve plain and gzip-compressed copies.
"""

from __future__ import annotations

import http.client
import logging
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

import numpy as np

from ._digits import _float_dtype
from ._idx import _GZIP_MAGIC, _maybe_gunzip, _parse_idx

__all__ = [
    "ChecksumError",
    "DownloadError",
    "load_mnist",
    "load_fashion_mnist",
    "default_cache_dir",
]

log = logging.getLogger("chainrule.datasets")

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
N_TRAIN = 60000
N_TEST = 10000
IMAGE_SHAPE = (28, 28)

DATA_ENV = "CHAINRULE_DATA"
DOWNLOAD_TIMEOUT = 60.0  # seconds, per network operation
_CHUNK = 1 << 20


class ChecksumError(ValueError):
    """A data file's content is not the official one (SHA-256 mismatch or corrupt)."""


class DownloadError(ConnectionError):
    """A data file could not be fetched from any of the URLs tried."""


@dataclass(frozen=True)
class _Spec:
    name: str  # directory name in the cache, and the name for ``load()``
    title: str  # for messages
    url_env: str
    default_urls: tuple
    sha256: dict  # file name -> SHA-256 of the uncompressed file


MNIST = _Spec(
    name="mnist",
    title="MNIST",
    url_env="CHAINRULE_MNIST_URL",
    default_urls=(
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
    ),
    sha256={
        TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
)

FASHION_MNIST = _Spec(
    name="fashion-mnist",
    title="Fashion-MNIST",
    url_env="CHAINRULE_FASHION_MNIST_URL",
    default_urls=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    sha256={
        TRAIN_IMAGES: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        TRAIN_LABELS: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        TEST_IMAGES: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        TEST_LABELS: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
)


# --------------------------------------------------------------------------- paths


def default_cache_dir(name: str) -> Path:
    """Directory where dataset ``name`` is cached when no ``cache_dir`` is given.

    ``$CHAINRULE_DATA/<name>`` if that variable is set and non-empty, else
    ``~/.cache/chainrule/<name>``.
    """
    root = os.environ.get(DATA_ENV)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "chainrule"
    return base / name


def _find(directory: Path, fname: str):
    """The plain or ``.gz`` copy of ``fname`` in ``directory``, or None."""
    for candidate in (directory / fname, directory / (fname + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _urls(spec: _Spec, base_url) -> tuple:
    """Base URLs to try, in order: argument, then environment, then defaults."""
    if base_url is None:
        env = os.environ.get(spec.url_env, "").split()
        urls = tuple(env) if env else spec.default_urls
    elif isinstance(base_url, (str, bytes, os.PathLike)):
        urls = (os.fsdecode(base_url),)
    else:
        urls = tuple(os.fsdecode(u) for u in base_url)
    if not urls:
        raise ValueError("base_url: no URL given")
    return tuple(u if u.endswith("/") else u + "/" for u in urls)


# --------------------------------------------------------------------------- checks


def _verify(spec: _Spec, fname: str, data: bytes, source: str) -> None:
    expected = spec.sha256[fname]
    actual = sha256(data).hexdigest()
    if actual != expected:
        raise ChecksumError(
            f"{spec.title} file {fname} from {source}: SHA-256 of the uncompressed "
            f"content is {actual}, expected {expected}; the file is corrupt or not "
            "the official one"
        )


def _read_verified(spec: _Spec, fname: str, path: Path) -> bytes:
    """Uncompressed, checksum-verified content of a local copy of ``fname``."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        data = _maybe_gunzip(raw, str(path))
    except ValueError as exc:
        raise ChecksumError(f"{spec.title} file {fname}: {exc}") from exc
    _verify(spec, fname, data, str(path))
    return data


# --------------------------------------------------------------------------- download


def _fetch(url: str, out) -> None:
    req = urllib.request.Request(url, headers={"User-Agent": "chainrule-datasets"})
    with urllib.request.urlopen(req, timeout=DOWNLOAD_TIMEOUT) as resp:
        while True:
            chunk = resp.read(_CHUNK)
            if not chunk:
                break
            out.write(chunk)


def _download(spec: _Spec, fname: str, urls: tuple, directory: Path) -> bytes:
    """Fetch ``fname`` into ``directory``; return its verified uncompressed content.

    The download goes to a temporary file in ``directory`` that is renamed to
    its final name only once the content's checksum has been verified, and is
    deleted otherwise: the cache never holds a partial or corrupt file.
    """
    failures = []
    corrupt = False
    for base in urls:
        url = base + fname + ".gz"
        log.info("downloading %s", url)
        fd, tmp = tempfile.mkstemp(prefix=f".{fname}.", suffix=".part", dir=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                _fetch(url, out)
            with open(tmp, "rb") as f:
                raw = f.read()
            try:
                data = _maybe_gunzip(raw, url)
            except ValueError as exc:
                raise ChecksumError(f"{spec.title} file {fname}: {exc}") from exc
            _verify(spec, fname, data, url)
            final = directory / (fname + ".gz" if raw.startswith(_GZIP_MAGIC) else fname)
            os.chmod(tmp, 0o644)  # mkstemp creates 0600; a cache may be shared
            os.replace(tmp, final)
            tmp = None
            log.info("saved %s", final)
            return data
        except ChecksumError as exc:
            corrupt = True
            failures.append(str(exc))
        except (OSError, http.client.HTTPException) as exc:
            # URLError, HTTPError, timeouts and connection resets are OSErrors.
            failures.append(f"{url}: {exc}")
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass
    detail = "\n  ".join(failures)
    if corrupt:
        raise ChecksumError(
            f"{spec.title}: no valid copy of {fname} could be downloaded; nothing "
            f"was saved in {directory}:\n  {detail}"
        )
    raise DownloadError(
        f"{spec.title}: could not download {fname} into {directory}:\n  {detail}\n"
        f"Set base_url= or ${spec.url_env} to a reachable mirror, or put the files "
        "in the cache directory yourself."
    )


# --------------------------------------------------------------------------- loading


def _to_arrays(spec: _Spec, buffers: dict, dtype, flatten: bool):
    """The float arrays from the raw IDX bytes. Each file's bytes are dropped from `buffers` as
    soon as they are converted, so that at most one split's raw bytes live beside the floats
    (this keeps the peak memory of a load near the size of the result)."""
    out = []
    for img_name, lab_name, n in ((TRAIN_IMAGES, TRAIN_LABELS, N_TRAIN), (TEST_IMAGES, TEST_LABELS, N_TEST)):
        images = _parse_idx(buffers.pop(img_name), img_name, copy=False)
        labels = _parse_idx(buffers.pop(lab_name), lab_name, copy=False)
        if images.shape != (n, *IMAGE_SHAPE) or images.dtype != np.uint8:
            raise ValueError(f"{spec.title} {img_name}: unexpected {images.dtype} array {images.shape}")
        if labels.shape != (n,) or labels.dtype != np.uint8:
            raise ValueError(f"{spec.title} {lab_name}: unexpected {labels.dtype} array {labels.shape}")
        X = np.divide(images, 255, dtype=dtype)
        del images  # the last reference to this file's bytes
        if flatten:
            X = X.reshape(n, -1)
        out.append((X, labels.astype(np.int64)))
    return tuple(out)


def _load(spec: _Spec, path, cache_dir, download, base_url, dtype, flatten):
    dt = _float_dtype(dtype)
    buffers = {}
    if path is not None:
        directory = Path(path).expanduser()
        found = {f: _find(directory, f) for f in FILES}
        missing = [f for f, p in found.items() if p is None]
        if missing:
            raise FileNotFoundError(
                f"{spec.title}: {directory} has no "
                + ", ".join(f"{f}[.gz]" for f in missing)
            )
        for fname, p in found.items():
            buffers[fname] = _read_verified(spec, fname, p)
        return _to_arrays(spec, buffers, dt, flatten)

    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir(spec.name)
    found = {f: _find(directory, f) for f in FILES}
    missing = [f for f, p in found.items() if p is None]
    if missing and not download:
        raise FileNotFoundError(
            f"{spec.title}: not in the cache {directory} (missing "
            + ", ".join(f"{f}[.gz]" for f in missing)
            + ") and download=False"
        )
    urls = _urls(spec, base_url) if missing else ()
    if missing:
        directory.mkdir(parents=True, exist_ok=True)
    for fname in FILES:
        p = found[fname]
        if p is not None:
            buffers[fname] = _read_verified(spec, fname, p)
        else:
            buffers[fname] = _download(spec, fname, urls, directory)
    return _to_arrays(spec, buffers, dt, flatten)


_DOC = """Load {title}: 60000 training and 10000 test images of 28x28, classes 0..9.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A directory holding the four standard files ``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
        ``t10k-labels-idx1-ubyte``, each plain or with a ``.gz`` suffix. Only
        that directory is read; nothing is downloaded.
    cache_dir : str or os.PathLike, optional
        Without ``path``: the directory holding (or to receive) the files.
        Default ``$CHAINRULE_DATA/{name}``, or ``~/.cache/chainrule/{name}``
        when ``CHAINRULE_DATA`` is unset.
    download : bool, default True
        Without ``path``: fetch the files missing from the cache. With False a
        missing file raises ``FileNotFoundError``.
    base_url : str or sequence of str, optional
        Mirror(s) to fetch ``<base_url>/<file>.gz`` from, tried in order.
        Default: ``${url_env}`` (whitespace-separated URLs) if set, else
        {default_urls}.
    dtype : floating dtype, default numpy.float32
        dtype of the images, scaled from 0..255 to [0, 1].
    flatten : bool, default True
        Images as rows of 784 features ``(n, 784)``; otherwise ``(n, 28, 28)``.

    Returns
    -------
    ((X_train, y_train), (X_test, y_test))
        ``X`` of ``dtype``, ``y`` int64 labels 0..9.

    Raises
    ------
    ChecksumError
        A file (local or downloaded) does not match the official SHA-256 of its
        uncompressed content; the message names the file. A downloaded file
        is only saved in the cache after it verifies.
    DownloadError
        Every URL tried for a missing file failed (network or HTTP error).
    FileNotFoundError
        A file is missing from ``path``, or from the cache with download=False.
    """


def load_mnist(path=None, *, cache_dir=None, download=True, base_url=None, dtype=np.float32, flatten=True):
    return _load(MNIST, path, cache_dir, download, base_url, dtype, flatten)


def load_fashion_mnist(path=None, *, cache_dir=None, download=True, base_url=None, dtype=np.float32, flatten=True):
    return _load(FASHION_MNIST, path, cache_dir, download, base_url, dtype, flatten)


for _fn, _spec in ((load_mnist, MNIST), (load_fashion_mnist, FASHION_MNIST)):
    _fn.__doc__ = _DOC.format(
        title=_spec.title,
        name=_spec.name,
        url_env=_spec.url_env,
        default_urls=" then ".join(_spec.default_urls),
    )
del _fn, _spec
