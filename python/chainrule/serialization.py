"""Model files: a numpy .npz (no pickle) holding the flat parameters, the optimizer state and a
JSON header with the architecture, dtype, optimizer settings and training position.

Files are written atomically (temporary file, fsync, rename), so a crash never leaves a half
written file at the target path; load verifies the format version, shapes and a SHA-256 of the
arrays.
"""

import hashlib
import io
import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "chainrule-model"
VERSION = 1


def _digest(arrays):
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode() + str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return h.hexdigest()


def model_state(model):
    """(header, arrays) describing the model completely."""
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
    header["sha256"] = _digest(arrays)
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


def load(path):
    """A Sequential model from a file written by model.save(path)."""
    from .layers import Dense
    from .model import Sequential
    from . import optimizers

    try:
        with np.load(os.fspath(path), allow_pickle=False) as f:
            contents = {name: f[name] for name in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"{path} is not a readable chainrule model file ({e})") from None
    try:
        header = json.loads(contents.pop("header").tobytes())
    except (KeyError, ValueError):
        raise ValueError(f"{path} is not a chainrule model file (no header)") from None
    if header.get("format") != FORMAT:
        raise ValueError(f"{path} is not a chainrule model file")
    if header.get("version", 0) > VERSION:
        raise ValueError(f"{path} has format version {header['version']}; this chainrule reads "
                         f"up to {VERSION}: upgrade chainrule")
    if _digest(contents) != header.get("sha256"):
        raise ValueError(f"{path} is corrupt: its checksum does not match")
    sizes = header["sizes"]
    layers = [Dense(n_in, n_out, activation=act, dropout=p) for n_in, n_out, act, p in
              zip(sizes, sizes[1:], header["activations"], header["dropout"])]
    opt = header["optimizer"]
    optimizer = optimizers.OPTIMIZERS[opt["kind"]].__new__(optimizers.OPTIMIZERS[opt["kind"]])
    optimizer.lr, optimizer.options = opt["lr"], opt["options"]
    model = Sequential(layers, loss=header["loss"], dtype=header["dtype"],
                       seed=header.get("seed"), leaky_slope=header["leaky_slope"],
                       optimizer=optimizer)
    net = model._net
    if contents["params"].shape != (net.n_params,):
        raise ValueError(f"{path} holds {contents['params'].size} parameters; its architecture "
                         f"needs {net.n_params}")
    net.params[...] = contents["params"]
    for i, state in enumerate(net.optimizer_state()):
        saved = contents.get(f"optimizer_state{i}")
        if saved is None or saved.shape != state.shape:
            raise ValueError(f"{path}: optimizer state {i} does not fit the model")
        state[...] = saved
    net.optimizer_step = header["optimizer_step"]
    net.rng_state = int(header["dropout_rng_state"])
    model._shuffle_rng.bit_generator.state = _from_json_safe(header["shuffle_rng_state"])
    model._epochs_done = header["epochs_done"]
    model.history.epoch = list(header["history"]["epoch"])
    model.history.history = {k: list(v) for k, v in header["history"]["history"].items()}
    return model
