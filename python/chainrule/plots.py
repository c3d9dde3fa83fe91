"""Look at training: learning curves, first-layer weights as images, and a diagram of a small
network's neurons and connections. Needs matplotlib (`pip install chainrule[plot]`), imported
only when a plot is drawn, so `import chainrule` never needs it.

Every function returns a matplotlib Figure (not attached to pyplot, so nothing opens a window;
show it in a notebook by evaluating it, or save it with fig.savefig) and, given path=, also writes
it there. A figure is figsize × dpi pixels. Colours follow 3Blue1Brown: blue for positive, red
for negative values.
"""

import math

import numpy as np

__all__ = ["plot_history", "plot_weights", "plot_network", "plot_model"]

_INSTALL_HINT = "plotting needs matplotlib: pip install chainrule[plot]"
_CMAP = "RdBu"  # low (negative) red, high (positive) blue


def require_matplotlib():
    """Import matplotlib or raise ImportError saying how to install it."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError as e:
        raise ImportError(_INSTALL_HINT) from e


def _figure(figsize, dpi):
    require_matplotlib()
    from matplotlib.figure import Figure
    return Figure(figsize=figsize, dpi=dpi, layout="constrained")


def _finish(fig, path):
    if path is not None:
        fig.savefig(path, dpi=fig.dpi)
    return fig


# ----- training curves ----------------------------------------------------------------------------
def _history_dict(history):
    """(epochs, {key: values}) from a History, a model with .history, or a dict of lists."""
    if hasattr(history, "layers") and hasattr(history, "history"):  # a Sequential
        history = history.history
    if hasattr(history, "history") and hasattr(history, "epoch"):  # a History
        logs, epochs = history.history, list(history.epoch)
    elif isinstance(history, dict):
        logs, epochs = history, None
    else:
        raise TypeError(f"expected a History, a model or a dict of lists, got {history!r}")
    n = max((len(v) for v in logs.values()), default=0)
    if not n:
        raise ValueError("the history is empty: train the model (model.fit) first")
    if not epochs or len(epochs) != n:
        epochs = list(range(1, n + 1))
    return epochs, logs


def _history_panels(logs):
    panels = [("loss", ["loss", "val_loss"]), ("accuracy", ["accuracy", "val_accuracy"]),
              ("learning rate", ["lr"]), ("gradient norm", ["grad_norm"])]
    return [(title, [k for k in keys if k in logs]) for title, keys in panels
            if any(k in logs for k in keys)]


def _draw_history(axes, epochs, logs, panels):
    from matplotlib.ticker import MaxNLocator

    for ax, (title, keys) in zip(axes, panels):
        for key in keys:
            values = np.asarray(logs[key], dtype=float)
            x = epochs[:len(values)]
            label = ("validation" if key.startswith("val_") else
                     "train" if title in ("loss", "accuracy") else key)
            ax.plot(x, values, marker="o" if len(values) <= 30 else None, markersize=3,
                    color="tab:orange" if key.startswith("val_") else "tab:blue", label=label)
        values = np.concatenate([np.asarray(logs[k], dtype=float) for k in keys])
        finite = values[np.isfinite(values)]
        if (title in ("learning rate", "gradient norm") and finite.size and finite.min() > 0
                and finite.max() / finite.min() > 10):
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.get_yscale() == "linear":
            ax.ticklabel_format(axis="y", useOffset=False)
        ax.grid(alpha=0.3)
        if title in ("loss", "accuracy"):
            ax.legend()


def plot_history(history, *, path=None, figsize=None, dpi=100):
    """Training curves from a History (or a model, or a dict of per-epoch lists): loss and
    accuracy for train vs validation (val_* keys, present when fit got validation_data), the
    learning rate and the gradient norm, one panel each for the keys present."""
    epochs, logs = _history_dict(history)
    panels = _history_panels(logs)
    if not panels:
        raise ValueError(f"nothing to plot: the history has keys {sorted(logs)}")
    fig = _figure(figsize or (4 * len(panels), 3.2), dpi)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    _draw_history(axes, epochs, logs, panels)
    return _finish(fig, path)


# ----- first-layer weights ------------------------------------------------------------------------
def _image_shape(n_in, shape):
    if shape is not None:
        shape = tuple(int(s) for s in shape)
        if math.prod(shape) != n_in or len(shape) != 2:
            raise ValueError(f"shape {shape} does not hold the layer's {n_in} inputs")
        return shape
    side = math.isqrt(n_in)
    if side * side != n_in:
        raise ValueError(f"the first layer has {n_in} inputs, not a square image: pass "
                         f"shape=(height, width)")
    return side, side


def _draw_weights(fig, W, shape, max_neurons, scale):
    shape = _image_shape(W.shape[0], shape)
    k = min(W.shape[1], max_neurons)
    cols = math.ceil(math.sqrt(k))
    rows = math.ceil(k / cols)
    axes = fig.subplots(rows, cols, squeeze=False)
    global_lim = float(np.abs(W[:, :k]).max()) or 1.0
    for j, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if j >= k:
            continue
        image = W[:, j].reshape(shape)
        lim = global_lim if scale == "global" else (float(np.abs(image).max()) or 1.0)
        ax.imshow(image, cmap=_CMAP, vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_title(str(j), fontsize=7, pad=1)
    shown = f"{k} of {W.shape[1]}" if k < W.shape[1] else f"all {k}"
    fig.suptitle(f"first-layer weights: {shown} neurons, each its {shape[0]}×{shape[1]} input "
                 f"weights (blue +, red −)", fontsize=10)


def plot_weights(model, *, layer=0, shape=None, max_neurons=64, scale="neuron", path=None,
                 figsize=(8, 8), dpi=100):
    """Each neuron of layer `layer` (default the first) as an image of its input weights
    W[:, j], reshaped to `shape` (default: square, e.g. 8×8 for digits, 28×28 for MNIST).
    scale="neuron" gives each image its own symmetric colour range, "global" one for all."""
    if scale not in ("neuron", "global"):
        raise ValueError(f"scale must be 'neuron' or 'global', got {scale!r}")
    W = np.asarray(model.layers[layer].W, dtype=float)
    fig = _figure(figsize, dpi)
    _draw_weights(fig, W, shape, max_neurons, scale)
    return _finish(fig, path)


# ----- network diagram ----------------------------------------------------------------------------
def _shown(n, max_neurons):
    """Indices of the neurons drawn for a layer of n, and where the gap (⋮) goes, or None."""
    if n <= max_neurons:
        return list(range(n)), None
    head = (max_neurons + 1) // 2
    tail = max_neurons - head
    return list(range(head)) + list(range(n - tail, n)), head


def _draw_network(ax, model, values, neuron_values, max_neurons, what):
    from matplotlib import cm, colormaps, colors
    from matplotlib.collections import LineCollection

    sizes = model.sizes
    shown = [_shown(n, max_neurons) for n in sizes]
    height = max(len(s[0]) + (s[1] is not None) for s in shown)
    positions = []
    for idx, gap in shown:
        slots = len(idx) + (gap is not None)
        ys = [height / 2 - (slots - 1) / 2 + s for s in range(slots)]
        if gap is not None:
            ys = ys[:gap] + ys[gap + 1:]
        positions.append(dict(zip(idx, ys[::-1])))
    limit = max(float(np.abs(v).max()) for v in values) or 1.0
    norm = colors.Normalize(-limit, limit)
    cmap = colormaps[_CMAP]
    for l, V in enumerate(values):
        segments, widths, rgba = [], [], []
        for i, y0 in positions[l].items():
            for j, y1 in positions[l + 1].items():
                v = V[i, j]
                segments.append([(l, y0), (l + 1, y1)])
                widths.append(0.2 + 3.0 * abs(v) / limit)
                rgba.append(cmap(norm(v)))
        order = np.argsort(widths)  # the strongest connections on top
        ax.add_collection(LineCollection([segments[k] for k in order],
                                         linewidths=[widths[k] for k in order],
                                         colors=[rgba[k] for k in order], zorder=1))
    # Neurons as scatter markers, so they stay round whatever the axes' aspect.
    box = ax.get_window_extent()
    slot = box.height * 72 / ax.figure.dpi / (height + 2.4)
    diameter = min(0.6 * slot, 0.25 * box.width * 72 / ax.figure.dpi / len(sizes), 22.0)
    for l, pos in enumerate(positions):
        fills = neuron_values[l]
        faces = ["white" if fills is None else str(1.0 - float(fills[i])) for i in pos]
        ax.scatter([l] * len(pos), list(pos.values()), s=diameter ** 2, c=faces,
                   edgecolors="black", linewidths=0.8, zorder=2)
        gap = shown[l][1]
        if gap is not None:
            ys = sorted(pos.values())
            mid = (ys[len(ys) - gap - 1] + ys[len(ys) - gap]) / 2
            ax.text(l, mid, "⋮", ha="center", va="center", fontsize=14, zorder=3)
        label = "input" if l == 0 else f"layer {l}"
        act = "" if l == 0 else f"\n{model.layers[l - 1].activation}"
        ax.text(l, -0.9, f"{label}\n{sizes[l]}{act}", ha="center", va="top", fontsize=8)
    ax.set_xlim(-0.5, len(sizes) - 0.5)
    ax.set_ylim(-2.2, height + 0.2)
    ax.set_axis_off()
    ax.set_title(what, fontsize=10)
    mappable = cm.ScalarMappable(norm=norm, cmap=cmap)
    ax.figure.colorbar(mappable, ax=ax, shrink=0.6, label=what.split(":")[0])


def plot_network(model, X=None, y=None, *, gradients=False, max_neurons=16, path=None,
                 figsize=None, dpi=100):
    """A diagram of the network in the style of 3Blue1Brown: neurons as circles in columns,
    every connection a line whose colour (blue +, red −) and width show its weight W[i, j].

    gradients=True draws ∂C/∂W on (X, y) instead (from chainrule.backprop; needs X and y).
    Given X, the neurons are shaded by their activations for the first sample (black = the
    layer's largest |a|). Layers wider than max_neurons show their first and last neurons
    around a ⋮."""
    if gradients and (X is None or y is None):
        raise ValueError("gradients=True needs X and y to compute ∂C/∂W")
    fills = [None] * len(model.sizes)
    if gradients:
        from .backprop import backprop
        bp = backprop(model, X, y)
        values = [np.asarray(d["dW"], dtype=float) for d in bp["layers"]]
        what = f"∂C/∂W on {len(bp['dx'])} samples: colour = sign, width = size"
    else:
        values = [np.asarray(layer.W, dtype=float) for layer in model.layers]
        what = "weights W: colour = sign, width = size"
    if X is not None:
        x = model._features(X)[:1]
        a = [np.asarray(x, dtype=float)[0]] + [
            np.asarray(model._net.trace(x, _dummy_targets(model, 1))[l]["a"], dtype=float)[0]
            for l in range(len(model.layers))]
        fills = [np.abs(v) / (np.abs(v).max() or 1.0) for v in a]
        what += "; neurons shaded by activation (sample 0)"
    if figsize is None:
        n = len(model.sizes)
        figsize = (max(4.0, 1.8 * n + 1.5), 4.5 if max(model.sizes) <= 8 else 6.0)
    fig = _figure(figsize, dpi)
    _draw_network(fig.subplots(), model, values, fills, max_neurons, what)
    return _finish(fig, path)


def _dummy_targets(model, n):
    """Targets of the right shape for a trace whose δ is not used."""
    if model.loss == "cross_entropy":
        return np.zeros(n, dtype=np.int32)
    return np.zeros((n, model.layers[-1].n_out), dtype=model.dtype)


# ----- everything at once -------------------------------------------------------------------------
def plot_model(model, *, path=None, shape=None, max_neurons=16, figsize=(14, 9), dpi=100):
    """One figure summing up a model: its training curves (when it has a history), the
    first-layer weights as images (when its inputs form a square image, or given shape) and
    the network diagram. This is what `chainrule train --plot` and `chainrule plot` draw."""
    try:
        epochs, logs = _history_dict(model)
        panels = _history_panels(logs)
    except ValueError:
        panels = []
    try:
        _image_shape(model.layers[0].n_in, shape)
        images = model.layers[0].n_in >= 16
    except ValueError:
        images = False
    fig = _figure(figsize, dpi)
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.6]) if panels else (None, fig)
    if panels:
        _draw_history(top.subplots(1, len(panels), squeeze=False)[0], epochs, logs, panels)
        top.suptitle(f"training: {len(epochs)} epochs", fontsize=11)
    if images:
        left, right = bottom.subfigures(1, 2, width_ratios=[1, 1.25])
        _draw_weights(left, np.asarray(model.layers[0].W, dtype=float), shape, 64, "neuron")
    else:
        right = bottom
    _draw_network(right.subplots(), model,
                  [np.asarray(layer.W, dtype=float) for layer in model.layers],
                  [None] * len(model.sizes), max_neurons,
                  "weights W: colour = sign, width = size")
    fig.suptitle(f"network {'-'.join(map(str, model.sizes))}, loss {model.loss}, "
                 f"{model.n_params:,} parameters", fontsize=12)
    return _finish(fig, path)
