"""Callbacks: user code that fit() runs at the start and end of training and of each epoch, and
after each chunk of batches.

fit() calls, in order: on_train_begin(logs), then per epoch on_epoch_begin(epoch, logs),
on_batch_end(batch, logs) after each chunk of batches the core trained in one call, and
on_epoch_end(epoch, logs); finally on_train_end(logs). Set ``self.model.stop_training = True``
to stop after the current epoch.

on_batch_end is called once per *chunk*, not once per batch: the core trains several batches per
call (about 50 ms of work) so that Python is not on the hot path. ``batch`` is the index of the
chunk's last batch in the epoch and logs holds "first_batch", "n_batches" (the chunk),
"batches_done" and the running "loss" (and "accuracy") of the epoch so far, "samples" and "lr".
"""

import csv
import math
import os
import warnings

import numpy as np

__all__ = ["Callback", "Checkpoint", "CSVLogger", "EarlyStopping", "LambdaCallback",
           "ProgressBar"]


class Callback:
    """Base class: override the hooks you need. self.model is the model being trained."""

    model = None

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass


class LambdaCallback(Callback):
    """A callback from functions: LambdaCallback(on_epoch_end=lambda epoch, logs: ...)."""

    def __init__(self, on_train_begin=None, on_epoch_begin=None, on_batch_end=None,
                 on_epoch_end=None, on_train_end=None):
        for name, fn in (("on_train_begin", on_train_begin), ("on_epoch_begin", on_epoch_begin),
                         ("on_batch_end", on_batch_end), ("on_epoch_end", on_epoch_end),
                         ("on_train_end", on_train_end)):
            if fn is not None:
                setattr(self, name, fn)


class CSVLogger(Callback):
    """Append one row per epoch (epoch and every logged value) to a CSV file.

    append=False starts a new file at the beginning of training; append=True adds to an existing
    one: its header fixes the columns (a key it has no column for is left out, with a warning),
    and the header is written only if the file is empty. "epoch" is the model's epoch number
    (history.epoch), so appended rows continue the count. Rows are flushed every epoch.
    """

    def __init__(self, path, separator=",", append=False):
        self.path = os.fspath(path)
        self.separator = separator
        self.append = append
        self._file = None
        self._writer = None
        self._keys = None

    def on_train_begin(self, logs=None):
        self._keys, self._warned = None, False
        if self.append and os.path.exists(self.path):
            with open(self.path, newline="") as f:
                header = next(csv.reader(f, delimiter=self.separator), None)
            if header:
                self._keys = header[1:]  # the file's columns, after "epoch"
        self._file = open(self.path, "a" if self.append else "w", newline="")
        self._writer = csv.writer(self._file, delimiter=self.separator)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._keys is None:
            self._keys = list(logs)
            self._writer.writerow(["epoch"] + self._keys)
        missing = [key for key in logs if key not in self._keys]
        if missing and not self._warned:
            warnings.warn(f"CSVLogger: {self.path} has no column for {missing}; they are not "
                          f"written (log to a new file to keep them)", RuntimeWarning,
                          stacklevel=2)
            self._warned = True
        history = getattr(self.model, "history", None)
        number = history.epoch[-1] if history is not None and history.epoch else epoch + 1
        self._writer.writerow([number] + [_fmt(logs.get(key, "")) for key in self._keys])
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


def _fmt(value):
    return repr(float(value)) if isinstance(value, (float, np.floating)) else value


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than min_delta for `patience` epochs.

    monitor: a history key, "val_loss" by default (fit must have validation data, given or from
    validation_split). mode: "min", "max" or "auto" (max when the key names an accuracy).
    restore_best_weights: at the end of training (stopped early or not), put back the weights of
    the best epoch seen. Only the weights and biases are restored, not the optimizer state.
    baseline: stop if the monitored value does not beat it within `patience` epochs.
    After training, best_epoch (1-based, the model's epoch count), best and stopped_epoch tell
    what happened.
    """

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto",
                 restore_best_weights=False, baseline=None):
        if patience < 0 or min_delta < 0:
            raise ValueError("patience and min_delta must be >= 0")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor, self.patience, self.min_delta = monitor, int(patience), float(min_delta)
        self.mode = mode
        self.restore_best_weights = restore_best_weights
        self.baseline = baseline
        self._reset()

    def _reset(self):
        self.best = None
        self.best_epoch = None
        self.best_weights = None
        self.wait = 0
        self.stopped_epoch = None

    @property
    def _sign(self):
        if self.mode == "max" or (self.mode == "auto" and "acc" in self.monitor):
            return -1.0
        return 1.0

    def improved(self, value, reference):
        """True if value beats reference by more than min_delta in the monitored direction."""
        if reference is None:
            return True
        return self._sign * value < self._sign * reference - self.min_delta

    def on_train_begin(self, logs=None):
        self._reset()
        self.best = self.baseline

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise KeyError(f"EarlyStopping monitors {self.monitor!r}, which this fit does not "
                           f"record (available: {', '.join(logs)}); give validation_data or "
                           f"validation_split, or monitor 'loss'")
        value = float(logs[self.monitor])
        if math.isfinite(value) and self.improved(value, self.best):
            self.best = value
            self.best_epoch = self.model._epochs_done
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = np.array(self.model._net.params, copy=True)
            return
        self.wait += 1
        if self.wait >= max(self.patience, 1):
            self.stopped_epoch = self.model._epochs_done
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model._net.params[...] = self.best_weights


class Checkpoint(Callback):
    """Save the model every `every` epochs, and keep the best one.

    path: the file for the periodic saves; "{epoch}" in it is replaced by the model's epoch count
    (keeping one file per save), else each save replaces the last. best_path: the file holding
    the best model so far by `monitor` (mode "min", "max", or "auto": max for accuracies);
    None keeps no best file. Both are written atomically by model.save, so a crash or Ctrl-C
    during a save leaves the previous file intact. Saves happen only at epoch ends: a fit that is
    interrupted or diverges mid-epoch leaves the last saved epoch on disk.
    After training, `best`, `best_epoch` and `saved` (the paths written, in order) tell what
    happened. A non-finite monitored value never counts as the best.
    """

    def __init__(self, path, every=1, best_path=None, monitor="val_loss", mode="auto"):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.path = None if path is None else os.fspath(path)
        self.best_path = None if best_path is None else os.fspath(best_path)
        if self.path is None and self.best_path is None:
            raise ValueError("give path, best_path or both")
        self.every, self.monitor, self.mode = every, monitor, mode
        self.best = None
        self.best_epoch = None
        self.saved = []

    @property
    def _sign(self):
        if self.mode == "max" or (self.mode == "auto" and "acc" in self.monitor):
            return -1.0
        return 1.0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        done = self.model._epochs_done
        if self.path is not None and done % self.every == 0:
            path = self.path.replace("{epoch}", str(done))
            self.model.save(path)
            self.saved.append(path)
        if self.best_path is None:
            return
        if self.monitor not in logs:
            raise KeyError(f"Checkpoint monitors {self.monitor!r}, which this fit does not "
                           f"record (available: {', '.join(logs)}); give validation_data or "
                           f"validation_split, or monitor 'loss'")
        value = float(logs[self.monitor])
        if math.isfinite(value) and (self.best is None or
                                     self._sign * value < self._sign * self.best):
            self.best, self.best_epoch = value, done
            self.model.save(self.best_path)
            self.saved.append(self.best_path)


def __getattr__(name):
    # ProgressBar lives in progress.py, which imports Callback from here.
    if name == "ProgressBar":
        from .progress import ProgressBar
        return ProgressBar
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
