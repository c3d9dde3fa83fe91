"""A dependency-free progress bar for fit(): batches, loss, accuracy, throughput and ETA.

It is a callback (fit(verbose=1) adds one); on a terminal it redraws one line per chunk of
batches, elsewhere (logs, notebooks captured to files) it prints one line per epoch.
"""

import sys
import time

from .callbacks import Callback

_HIDDEN = ("lr", "grad_norm", "time")


class ProgressBar(Callback):
    def __init__(self, epochs=None, batches_per_epoch=None, stream=None, width=24):
        self.epochs = epochs
        self.total = batches_per_epoch
        self.stream = stream or sys.stderr
        self.width = width
        self.live = getattr(self.stream, "isatty", lambda: False)()
        self.epoch = 0
        self._samples = 0
        self.start = time.perf_counter()

    # ----- callback hooks ---------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        logs = logs or {}
        self.epochs = logs.get("epochs", self.epochs)
        self.total = logs.get("batches_per_epoch", self.total)

    def on_epoch_begin(self, epoch, logs=None):
        self.begin_epoch(epoch)

    def on_batch_end(self, batch, logs=None):
        logs = logs or {}
        self._samples = logs.get("samples", 0)
        self.update(logs.get("batches_done", batch + 1), _metrics(logs), self._samples)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.end_epoch({k: v for k, v in logs.items() if k not in _HIDDEN}, self._samples)

    # ----- drawing ----------------------------------------------------------------------------
    def begin_epoch(self, epoch):
        self.epoch = epoch
        self._samples = 0
        self.start = time.perf_counter()

    def _line(self, done, metrics, samples):
        elapsed = time.perf_counter() - self.start
        total = self.total or 0
        filled = int(self.width * done / max(total, 1))
        bar = "█" * filled + "·" * (self.width - filled)
        rate = samples / elapsed if elapsed > 0 else 0.0
        eta = elapsed / done * (total - done) if done else 0.0
        parts = [f"epoch {self.epoch + 1}/{self.epochs}", f"{bar} {done}/{total}"]
        parts += [f"{k} {v:.4f}" for k, v in metrics.items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool)]
        parts.append(f"{rate:,.0f} samples/s")
        parts.append(f"ETA {eta:.1f}s" if done < total else f"{elapsed:.1f}s")
        return "  ".join(parts)

    def update(self, done, metrics, samples):
        if self.live:
            self.stream.write("\r" + self._line(done, metrics, samples) + "\033[K")
            self.stream.flush()

    def end_epoch(self, metrics, samples):
        line = self._line(self.total, metrics, samples)
        self.stream.write(("\r" + line + "\033[K" if self.live else line) + "\n")
        self.stream.flush()


def _metrics(logs):
    return {k: logs[k] for k in ("loss", "accuracy") if k in logs}
