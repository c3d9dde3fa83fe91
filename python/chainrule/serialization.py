"""Model files: a numpy .npz (no pickle) holding the flat parameters, the optimizer state and a
JSON header with the architecture, dtype, optimizer settings and training position.

Files are written atomically (temporary file, fsync, rename), so a crash never leaves a half
written file at the target path; load verifies the format version, shapes and a SHA-256 of the
arrays and (from version 2) of the header. The format is described in docs/reliability.md.

Versions: 1 (checksum over the arrays only); 2 (checksum over the arrays and the header, and the
position inside an epoch that a KeyboardInterrupt left). This version reads both.
"""

import hashlib
import io
import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "chainrule-model"
VERSION = 2
_ARRAY_NAMES = {"params", "optimizer_state0", "optimizer_state1", "optimizer_state2",
                "partial_order"}


def _digest(arrays, header=None):
    """SHA-256 over the arrays (names, dtypes, shapes, bytes) and, from version 2, the header
    without its "sha256" entry, as canonical JSON."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode() + str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    if header is not None:
        rest = {k: v for k, v in header.items() if k != "sha256"}
        h.update(json.dumps(rest, sort_keys=True, allow_nan=True).encode())
    return h.hexdigest()


def model_state(model):
    """(header, arrays) describing the model completely."""
    with model._params_lock.read():  # not in the middle of a training chunk of another thread
        return _model_state(model)


def _model_state(model):
    net = model._net
    states = net.optimizer_state()
    arrays = {"params": np.array(net.params)}
    arrays.update({f"optimizer_state{i}": np.array(s) for i, s in enumerate(states)})
    kind, options = model.optimizer.config()
    header = {
        "format": FORMAT,
        "version": VERSION,
        "sizes": model.sizes,
        "activations": [layer.activation for layer in model.layers],
        "dropout": [layer.dropout for layer in model.layers],
        "loss": model.loss,
        "dtype": np.dtype(model.dtype).name,
        "leaky_slope": net.leaky_slope,
        "seed": model.seed if isinstance(model.seed, (int, type(None))) else None,
        "optimizer": {"kind": kind, "lr": model.optimizer.lr, "options": options},
        "optimizer_step": net.optimizer_step,
        "dropout_rng_state": str(net.rng_state),
        "shuffle_rng_state": _json_safe(model._shuffle_rng.bit_generator.state),
        "epochs_done": model._epochs_done,
        "history": {"epoch": model.history.epoch, "history": model.history.history},
    }
    if model.schedule is not None:
        from .schedules import to_config
        config = to_config(model.schedule)
        if config is not None:
            header["schedule"] = config  # optional: files without it load with no schedule
    partial = getattr(model, "_partial_epoch", None)
    if partial is not None:  # fit was interrupted inside an epoch: where, to finish it later
        header["partial_epoch"] = {k: v for k, v in partial.items() if k != "order"}
        if partial["order"] is not None:
            arrays["partial_order"] = np.asarray(partial["order"], dtype=np.int64)
    header["sha256"] = _digest(arrays, header)
    return header, arrays


def _json_safe(state):
    """Bit-generator states hold integers beyond JSON's doubles: keep them as strings."""
    if isinstance(state, dict):
        return {k: _json_safe(v) for k, v in state.items()}
    if isinstance(state, (int, np.integer)) and not isinstance(state, bool):
        return {"int": str(int(state))}
    return state


def _from_json_safe(state):
    if isinstance(state, dict):
        if set(state) == {"int"}:
            return int(state["int"])
        return {k: _from_json_safe(v) for k, v in state.items()}
    return state


def save(model, path):
    header, arrays = model_state(model)
    buffer = io.BytesIO()
    np.savez(buffer, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".chainrule-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getvalue())
            f.flush()
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), _file_mode(path))  # mkstemp makes it 0600
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


class ModelFileError(ValueError):
    """A file that is not a chainrule model file, or is truncated, corrupt or tampered with."""


def _file_mode(path):
    """The mode a plain open() would give a new file (0666 less the umask), or the mode of the
    file being replaced."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        pass
    try:
        with open("/proc/self/status") as f:
            umask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def load(path):
    """A Sequential model from a file written by model.save(path).

    Raises FileNotFoundError (and other OSErrors) if the file cannot be opened, and
    ModelFileError (a ValueError) if it is not a chainrule model file, comes from a newer
    format version, or is truncated, corrupt or tampered with."""
    path = os.fspath(path)
    with open(path, "rb") as f:  # OSErrors (missing file, permissions, ...) pass as they are
        data = f.read()
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            contents = {name: f[name] for name in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise ModelFileError(f"{path} is not a readable chainrule model file ({e})") from None
    try:
        header = json.loads(contents.pop("header").tobytes())
    except (KeyError, ValueError, UnicodeDecodeError):
        raise ModelFileError(f"{path} is not a chainrule model file (no header)") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a chainrule model file")
    version = header.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{path} has an invalid format version {version!r}")
    if version > VERSION:
        raise ModelFileError(f"{path} has format version {version}; this chainrule reads up to "
                             f"{VERSION}: upgrade chainrule")
    if _digest(contents, header if version >= 2 else None) != header.get("sha256"):
        raise ModelFileError(f"{path} is corrupt or was modified: its checksum does not match")
    unknown = set(contents) - _ARRAY_NAMES
    if unknown:
        raise ModelFileError(f"{path} holds unexpected arrays {sorted(unknown)}")
    try:
        return _build(header, contents, path)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as e:
        raise ModelFileError(f"{path} has a malformed header ({type(e).__name__}: {e})") from None


def _unpickle(header, arrays, schedule):
    """The inverse of Sequential.__reduce__: the model load() would build from a file of this
    state, with the schedule object itself (a custom schedule has no file form)."""
    model = _build(header, dict(arrays), "a pickled model")
    model.schedule = schedule
    return model


def _build(header, contents, path):
    from .layers import Dense
    from .model import Sequential
    from . import optimizers

    sizes = header["sizes"]
    layers = [Dense(n_in, n_out, activation=act, dropout=p) for n_in, n_out, act, p in
              zip(sizes, sizes[1:], header["activations"], header["dropout"])]
    if len(layers) != len(sizes) - 1 or len(header["activations"]) != len(layers):
        raise ModelFileError(f"{path}: the header's layer lists do not match its sizes")
    opt = header["optimizer"]
    optimizer_class = optimizers.OPTIMIZERS[opt["kind"]]
    optimizer = optimizer_class.__new__(optimizer_class)
    optimizer.lr, optimizer.options = opt["lr"], dict(opt["options"])
    model = Sequential(layers, loss=header["loss"], dtype=header["dtype"],
                       seed=header.get("seed"), leaky_slope=header["leaky_slope"],
                       optimizer=optimizer)
    net = model._net
    params = contents.get("params")
    if params is None or params.shape != (net.n_params,) or params.dtype != model.dtype:
        raise ModelFileError(f"{path} holds parameters of shape "
                             f"{None if params is None else params.shape}; its architecture "
                             f"needs ({net.n_params},) of {np.dtype(model.dtype).name}")
    net.params[...] = params
    for i, state in enumerate(net.optimizer_state()):
        saved = contents.get(f"optimizer_state{i}")
        if saved is None or saved.shape != state.shape:
            raise ModelFileError(f"{path}: optimizer state {i} does not fit the model")
        state[...] = saved
    net.optimizer_step = int(header["optimizer_step"])
    net.rng_state = int(header["dropout_rng_state"])
    model._shuffle_rng.bit_generator.state = _from_json_safe(header["shuffle_rng_state"])
    model._epochs_done = int(header["epochs_done"])
    model.history.epoch = list(header["history"]["epoch"])
    model.history.history = {k: list(v) for k, v in header["history"]["history"].items()}
    if header.get("schedule"):
        from .schedules import from_config
        model.schedule = from_config(header["schedule"])
    partial = header.get("partial_epoch")
    if partial is not None:
        order = contents.get("partial_order")
        if partial["shuffle"] and (order is None or order.shape != (partial["n"],)):
            raise ModelFileError(f"{path}: the interrupted epoch's sample order is missing")
        model._partial_epoch = dict(partial, order=order)
    return model
