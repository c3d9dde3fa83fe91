"""Reader for the IDX file format (the format MNIST and Fashion-MNIST ship in).

An IDX file is a 4-byte magic number, one big-endian uint32 per dimension,
then the elements in C order, big-endian::

    byte 0, 1   zero
    byte 2      element type (0x08 ubyte, 0x09 byte, 0x0B short, 0x0C int,
                0x0D float, 0x0E double)
    byte 3      number of dimensions
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

__all__ = ["read_idx"]

# IDX type code -> big-endian numpy dtype of the stored elements.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


def _read_file_bytes(path) -> bytes:
    """Return the content of ``path``, gunzipped if it starts with the gzip magic.

    Compression is detected from the first bytes, never from the file name.
    A damaged gzip stream raises ``ValueError``.
    """
    with open(path, "rb") as f:
        raw = f.read()
    return _maybe_gunzip(raw, os.fsdecode(path))


def _maybe_gunzip(raw: bytes, what: str) -> bytes:
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{what}: corrupt or truncated gzip data ({exc})") from exc


def _parse_idx(buf, what: str = "IDX data", *, copy: bool = True) -> np.ndarray:
    """Parse an uncompressed IDX buffer into an array in native byte order.

    With ``copy=False`` single-byte element types are returned as a read-only
    view of ``buf`` (no copy); wider types are always converted.
    """
    n = len(buf)
    if n < 4:
        raise ValueError(f"{what}: too short to be an IDX file ({n} bytes, need at least 4)")
    b0, b1, code, ndim = buf[0], buf[1], buf[2], buf[3]
    if b0 != 0 or b1 != 0 or code not in _IDX_DTYPES:
        raise ValueError(
            f"{what}: bad IDX magic number 0x{bytes(buf[:4]).hex()} "
            "(expected 0x0000TTNN with type TT in 08, 09, 0B, 0C, 0D, 0E)"
        )
    header = 4 + 4 * ndim
    if n < header:
        raise ValueError(
            f"{what}: truncated IDX header: {ndim} dimensions need {header} bytes, "
            f"the data has {n}"
        )
    shape = tuple(int(d) for d in np.frombuffer(buf, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    count = 1
    for d in shape:
        count *= d
    expected = header + count * dtype.itemsize
    if n < expected:
        raise ValueError(
            f"{what}: truncated IDX data: shape {shape} of {dtype.name} needs "
            f"{expected} bytes, the data has {n}"
        )
    if n > expected:
        raise ValueError(
            f"{what}: IDX size mismatch: shape {shape} of {dtype.name} needs "
            f"{expected} bytes, the data has {n} ({n - expected} trailing bytes)"
        )
    arr = np.frombuffer(buf, dtype=dtype, count=count, offset=header).reshape(shape)
    native = dtype.newbyteorder("=")
    if copy or native != dtype:
        arr = arr.astype(native)  # always a fresh, writable, native-order array
    return arr


def read_idx(path) -> np.ndarray:
    """Read an IDX file into a numpy array.

    Parameters
    ----------
    path : str or os.PathLike
        The file, either raw or gzip-compressed. Compression is recognised from
        the file's first bytes (the gzip magic ``1f 8b``), not from its name.

    Returns
    -------
    numpy.ndarray
        A new, writable array in native byte order with the shape stored in
        the file and the dtype given by its type code: ``uint8`` (0x08),
        ``int8`` (0x09), ``int16`` (0x0B), ``int32`` (0x0C), ``float32``
        (0x0D) or ``float64`` (0x0E).

    Raises
    ------
    ValueError
        Bad magic number, corrupt gzip stream, truncated header or data, or
        more bytes than the header's shape accounts for.
    OSError
        The file cannot be opened or read.
    """
    what = os.fsdecode(path)
    return _parse_idx(_read_file_bytes(path), what)
