"""Learning-rate schedules for fit(schedule=...).

A schedule turns the optimizer's base learning rate into the rate of each step. It keeps its own
clock (epochs, optimizer steps and samples it has trained), so passing the same schedule object
to a second fit() call continues where the first stopped, and a saved model resumes it.

Schedules whose rate changes inside an epoch (``per_step = True``: cosine and warm-up by
default) give the core one rate per batch; the others change the rate between epochs only.

=====================  ======================================================  ============
schedule               rate for epoch e (0-based), step t (0-based)            granularity
=====================  ======================================================  ============
Constant()             lr                                                      --
StepDecay(s, gamma)    lr · gamma^floor(e / s)       (torch StepLR)            epoch
ExponentialDecay(g)    lr · g^e                      (torch ExponentialLR)     epoch
CosineDecay(E, ...)    linear warm-up, then min_lr + (lr − min_lr)(1+cos πu)/2  step or epoch
InverseScaling(p)      lr / (n_seen + 1)^p           (scikit-learn invscaling)  epoch
ReduceLROnPlateau(..)  lr · factor^k, k = reductions so far (torch/Keras)      epoch
=====================  ======================================================  ============
"""

import math

__all__ = ["Schedule", "Constant", "StepDecay", "ExponentialDecay", "CosineDecay",
           "InverseScaling", "ReduceLROnPlateau", "get", "SCHEDULES"]


class Schedule:
    """Base class. Subclasses implement rate(base_lr, epoch, step, samples) -> float.

    epoch, step and samples are the schedule's clock before the step: epochs finished, optimizer
    steps taken and samples trained on while this schedule was in use.
    """

    per_step = False
    name = None

    def __init__(self):
        self.epoch = 0
        self.step = 0
        self.samples = 0

    # -- what fit() calls --------------------------------------------------------------------
    def begin(self, epochs, steps_per_epoch, samples_per_epoch):
        """Called at the start of each fit() with that call's sizes."""

    def rate(self, base_lr, epoch, step, samples):
        raise NotImplementedError

    def epoch_rates(self, base_lr, first_batch, count):
        """Rates of `count` steps starting at batch `first_batch` of the current epoch."""
        if not self.per_step:
            return [self.rate(base_lr, self.epoch, self.step, self.samples)] * count
        return [self.rate(base_lr, self.epoch, self.step + k, self.samples)
                for k in range(first_batch, first_batch + count)]

    def end_epoch(self, logs, steps, samples):
        """Advance the clock by one epoch of `steps` steps and `samples` samples."""
        self.epoch += 1
        self.step += steps
        self.samples += samples

    # -- description and state ---------------------------------------------------------------
    def params(self):
        return {}

    def state(self):
        """JSON-safe position of the schedule (its clock and any adaptive state)."""
        return {"epoch": self.epoch, "step": self.step, "samples": self.samples}

    def load_state(self, state):
        self.epoch, self.step, self.samples = state["epoch"], state["step"], state["samples"]

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    name = "constant"

    def rate(self, base_lr, epoch, step, samples):
        return base_lr


class StepDecay(Schedule):
    """Multiply the rate by gamma every step_size epochs (torch.optim.lr_scheduler.StepLR)."""

    name = "step"

    def __init__(self, step_size, gamma=0.1):
        super().__init__()
        if int(step_size) != step_size or step_size < 1:
            raise ValueError(f"step_size must be a positive integer, got {step_size!r}")
        if not gamma > 0:
            raise ValueError(f"gamma must be > 0, got {gamma!r}")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def params(self):
        return {"step_size": self.step_size, "gamma": self.gamma}

    def rate(self, base_lr, epoch, step, samples):
        return base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialDecay(Schedule):
    """Multiply the rate by gamma every epoch (torch.optim.lr_scheduler.ExponentialLR)."""

    name = "exponential"

    def __init__(self, gamma):
        super().__init__()
        if not gamma > 0:
            raise ValueError(f"gamma must be > 0, got {gamma!r}")
        self.gamma = float(gamma)

    def params(self):
        return {"gamma": self.gamma}

    def rate(self, base_lr, epoch, step, samples):
        return base_lr * self.gamma ** epoch


class CosineDecay(Schedule):
    """Cosine annealing from lr to min_lr over `epochs` epochs, after an optional linear warm-up.

    With per_step=True (default) the rate changes at every optimizer step: during the first
    W = round(warmup_epochs · steps_per_epoch) steps it is lr·(t+1)/W, then
    min_lr + (lr − min_lr)·(1 + cos(π·u))/2 with u = (t − W)/(T − W) the fraction of the
    remaining T − W steps done (T = epochs · steps_per_epoch); after T steps it stays min_lr.
    With per_step=False the same formula runs on epochs (torch's CosineAnnealingLR, stepped
    once per epoch). epochs=None takes the number of epochs of the first fit() that uses it.
    """

    name = "cosine"

    def __init__(self, epochs=None, min_lr=0.0, warmup_epochs=0, per_step=True):
        super().__init__()
        if epochs is not None and (int(epochs) != epochs or epochs < 1):
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        if min_lr < 0 or warmup_epochs < 0:
            raise ValueError("min_lr and warmup_epochs must be >= 0")
        if epochs is not None and warmup_epochs >= epochs:
            raise ValueError("warmup_epochs must be shorter than epochs")
        self.epochs = None if epochs is None else int(epochs)
        self.min_lr = float(min_lr)
        self.warmup_epochs = warmup_epochs
        self.per_step = bool(per_step)
        self.steps_per_epoch = None

    def params(self):
        return {"epochs": self.epochs, "min_lr": self.min_lr, "warmup_epochs": self.warmup_epochs,
                "per_step": self.per_step}

    def begin(self, epochs, steps_per_epoch, samples_per_epoch):
        if self.epochs is None:
            if self.warmup_epochs >= epochs:
                raise ValueError("warmup_epochs must be shorter than the training")
            self.epochs = int(epochs)
        if self.steps_per_epoch is None:
            self.steps_per_epoch = int(steps_per_epoch)
        # With min_lr 0 the rate past the end is 0, which fit refuses: say so before training.
        if self.per_step:
            end, total = self.step + epochs * steps_per_epoch, self.epochs * self.steps_per_epoch
        else:
            end, total = self.epoch + epochs, self.epochs
        if self.min_lr == 0 and end > total:
            raise ValueError(f"{self!r} reaches a rate of 0 after {self.epochs} epochs, and this "
                             f"fit would train past them (to epoch {self.epoch + epochs}): give "
                             f"min_lr > 0 or more epochs")

    def rate(self, base_lr, epoch, step, samples):
        if self.per_step:
            t, total = step, self.epochs * self.steps_per_epoch
            warmup = int(round(self.warmup_epochs * self.steps_per_epoch))
        else:
            t, total = epoch, self.epochs
            warmup = int(round(self.warmup_epochs))
        if t < warmup:
            return base_lr * (t + 1) / warmup
        if t >= total:
            return self.min_lr
        u = (t - warmup) / (total - warmup)
        return self.min_lr + (base_lr - self.min_lr) * (1.0 + math.cos(math.pi * u)) / 2.0

    def state(self):
        return dict(super().state(), epochs=self.epochs, steps_per_epoch=self.steps_per_epoch)

    def load_state(self, state):
        super().load_state(state)
        self.epochs, self.steps_per_epoch = state["epochs"], state["steps_per_epoch"]


class InverseScaling(Schedule):
    """scikit-learn's ``learning_rate="invscaling"``: lr / (t + 1)^power_t, where t counts the
    samples trained on before the current epoch. Like scikit-learn's MLP, the rate is updated at
    the end of each epoch (iteration), so the first epoch runs at lr."""

    name = "invscaling"

    def __init__(self, power_t=0.5):
        super().__init__()
        if power_t < 0:
            raise ValueError(f"power_t must be >= 0, got {power_t!r}")
        self.power_t = float(power_t)

    def params(self):
        return {"power_t": self.power_t}

    def rate(self, base_lr, epoch, step, samples):
        if samples == 0:
            return base_lr
        return base_lr / (samples + 1) ** self.power_t


class ReduceLROnPlateau(Schedule):
    """Multiply the rate by `factor` when `monitor` has not improved by more than min_delta for
    `patience` epochs, then wait `cooldown` epochs; never below min_lr.

    monitor: a history key ("val_loss" by default; "loss" is used when there is no validation
    data). mode: "min", "max" or "auto" (max for accuracies).
    """

    name = "plateau"

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, min_delta=1e-4, cooldown=0,
                 min_lr=0.0, mode="auto"):
        super().__init__()
        if not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {factor!r}")
        if patience < 0 or cooldown < 0 or min_delta < 0 or min_lr < 0:
            raise ValueError("patience, cooldown, min_delta and min_lr must be >= 0")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor, self.factor, self.patience = monitor, float(factor), int(patience)
        self.min_delta, self.cooldown, self.min_lr = float(min_delta), int(cooldown), float(min_lr)
        self.mode = mode
        self.scale = 1.0
        self.best = None
        self.wait = 0
        self.cooldown_left = 0

    def params(self):
        return {"monitor": self.monitor, "factor": self.factor, "patience": self.patience,
                "min_delta": self.min_delta, "cooldown": self.cooldown, "min_lr": self.min_lr,
                "mode": self.mode}

    def rate(self, base_lr, epoch, step, samples):
        return max(base_lr * self.scale, self.min_lr)

    def end_epoch(self, logs, steps, samples):
        super().end_epoch(logs, steps, samples)
        key = self.monitor if self.monitor in logs else (
            self.monitor[4:] if self.monitor.startswith("val_") else None)
        if key is None or key not in logs:
            raise KeyError(f"ReduceLROnPlateau monitors {self.monitor!r}, which fit does not "
                           f"record; available: {', '.join(logs)}")
        value = logs[key]
        sign = -1.0 if (self.mode == "max" or (self.mode == "auto" and "acc" in key)) else 1.0
        if self.best is None or sign * value < sign * self.best - self.min_delta:
            self.best, self.wait = value, 0
        elif self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.wait = 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.scale *= self.factor
                self.wait = 0
                self.cooldown_left = self.cooldown

    def state(self):
        return dict(super().state(), scale=self.scale, best=self.best, wait=self.wait,
                    cooldown_left=self.cooldown_left)

    def load_state(self, state):
        super().load_state(state)
        self.scale, self.best = state["scale"], state["best"]
        self.wait, self.cooldown_left = state["wait"], state["cooldown_left"]


SCHEDULES = {cls.name: cls for cls in (Constant, StepDecay, ExponentialDecay, CosineDecay,
                                       InverseScaling, ReduceLROnPlateau)}


def get(schedule):
    """A Schedule from an instance, a name of one without required arguments, or None."""
    if schedule is None:
        return Constant()
    if isinstance(schedule, str):
        if schedule not in ("constant", "cosine", "invscaling", "plateau"):
            raise ValueError(f"unknown or incomplete schedule {schedule!r}: pass an instance, "
                             f"or one of 'constant', 'cosine', 'invscaling', 'plateau'")
        return SCHEDULES[schedule]()
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a chainrule.schedules.Schedule or a name, "
                        f"got {schedule!r}")
    return schedule


def from_config(config):
    """Rebuild a schedule written by to_config (used by model files)."""
    schedule = SCHEDULES[config["name"]](**config["params"])
    schedule.load_state(config["state"])
    return schedule


def to_config(schedule):
    if schedule.name not in SCHEDULES or type(schedule) is not SCHEDULES[schedule.name]:
        return None  # a user-defined schedule: not stored in model files
    return {"name": schedule.name, "params": schedule.params(), "state": schedule.state()}
