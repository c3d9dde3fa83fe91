"""Input checks shared by the models: convert once, deliberately, or refuse with a clear error."""

import numpy as np

_DTYPES = {"float32": np.float32, "float64": np.float64}


def as_dtype(dtype):
    """np.float32 or np.float64 from a name or a numpy dtype."""
    try:
        resolved = np.dtype(dtype).type
    except TypeError:
        resolved = None
    if resolved not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return resolved


def _first_nonfinite(a):
    bad = np.argwhere(~np.isfinite(a))[0]
    return tuple(int(i) for i in bad)


def check_finite(a, name):
    if not np.isfinite(a).all():
        where = _first_nonfinite(a)
        place = f"row {where[0]}, column {where[1]}" if len(where) == 2 else f"index {where[0]}"
        raise ValueError(f"{name} contains NaN or infinity (first at {place})")


def as_features(X, n_features, dtype, name="X"):
    """X as a C-contiguous (n, n_features) array of dtype; the same object when it already is."""
    X = np.asarray(X)
    if X.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold real numbers, got dtype {X.dtype}")
    if X.ndim != 2:
        hint = " (reshape a single sample with X.reshape(1, -1))" if X.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (samples, features), got shape {X.shape}{hint}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} has no samples")
    if X.shape[1] != n_features:
        raise ValueError(f"{name} has {X.shape[1]} features, the model expects {n_features}")
    X = np.ascontiguousarray(X, dtype=dtype)
    check_finite(X, name)
    return X


def as_targets(y, n_samples, n_outputs, loss, dtype):
    """Targets in the form the core takes: int32 labels for cross-entropy with class indices,
    else a C-contiguous (n, n_outputs) float array."""
    y = np.asarray(y)
    if y.dtype.kind not in "fiub":
        raise TypeError(f"y must hold numbers, got dtype {y.dtype}")
    if y.ndim == 0 or y.shape[0] != n_samples:
        raise ValueError(f"X has {n_samples} samples but y has {y.shape[0] if y.ndim else 0}")
    if loss == "cross_entropy" and y.ndim == 1:
        return as_labels(y, n_outputs)
    if y.ndim == 1 and n_outputs == 1:
        y = y.reshape(-1, 1)
    if y.ndim != 2 or y.shape[1] != n_outputs:
        raise ValueError(f"y must have shape ({n_samples}, {n_outputs}) for this model, "
                         f"got {y.shape}")
    y = np.ascontiguousarray(y, dtype=dtype)
    check_finite(y, "y")
    return y


def as_labels(y, n_classes):
    """Class indices 0..n_classes-1 as int32."""
    if y.dtype.kind == "f":
        check_finite(y, "y")
        if not np.all(y == np.round(y)):
            raise ValueError("class labels must be whole numbers")
    if y.dtype.kind == "b":
        y = y.astype(np.int32)
    bad = np.flatnonzero((y < 0) | (y >= n_classes))
    if bad.size:
        raise ValueError(f"label {y[bad[0]].item()!r} at index {bad[0]} is outside [0, {n_classes}): "
                         f"the output layer has {n_classes} units")
    return np.ascontiguousarray(y, dtype=np.int32)


def positive_int(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def positive_float(value, name):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not (value > 0 and np.isfinite(value)):
        raise ValueError(f"{name} must be positive and finite, got {value}")
    return value
