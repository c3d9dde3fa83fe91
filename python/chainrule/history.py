"""What fit() records, one entry per epoch."""

import math


class History:
    """Per-epoch logs: history["loss"], history["val_accuracy"], ...; also .history as a dict.

    Every list lines up with .epoch: a key that an epoch did not log (val_loss in a fit without
    validation data, say) holds NaN for that epoch.
    """

    def __init__(self):
        self.history = {}
        self.epoch = []

    def append(self, epoch, logs):
        done = len(self.epoch)
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, [math.nan] * done).append(value)
        for values in self.history.values():
            if len(values) == done:
                values.append(math.nan)

    def __getitem__(self, key):
        return self.history[key]

    def __contains__(self, key):
        return key in self.history

    def __len__(self):
        return len(self.epoch)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"
