"""A dependency-free progress bar for fit(): batches, loss, accuracy, throughput and ETA."""

import sys
import time


class ProgressBar:
    def __init__(self, epochs, batches_per_epoch, stream=None, width=24):
        self.epochs = epochs
        self.total = batches_per_epoch
        self.stream = stream or sys.stderr
        self.width = width
        self.live = getattr(self.stream, "isatty", lambda: False)()
        self.epoch = 0
        self.start = time.perf_counter()

    def begin_epoch(self, epoch):
        self.epoch = epoch
        self.start = time.perf_counter()

    def _line(self, done, metrics, samples):
        elapsed = time.perf_counter() - self.start
        filled = int(self.width * done / max(self.total, 1))
        bar = "█" * filled + "·" * (self.width - filled)
        rate = samples / elapsed if elapsed > 0 else 0.0
        eta = elapsed / done * (self.total - done) if done else 0.0
        parts = [f"epoch {self.epoch + 1}/{self.epochs}", f"{bar} {done}/{self.total}"]
        parts += [f"{k} {v:.4f}" for k, v in metrics.items() if v is not None]
        parts.append(f"{rate:,.0f} samples/s")
        parts.append(f"ETA {eta:.1f}s" if done < self.total else f"{elapsed:.1f}s")
        return "  ".join(parts)

    def update(self, done, metrics, samples):
        if self.live:
            self.stream.write("\r" + self._line(done, metrics, samples) + "\033[K")
            self.stream.flush()

    def end_epoch(self, metrics, samples):
        line = self._line(self.total, metrics, samples)
        self.stream.write(("\r" + line + "\033[K" if self.live else line) + "\n")
        self.stream.flush()
