"""Optimizer settings. The updates themselves run in C++ (one fused pass per step); these classes
hold the hyper-parameters, named and defaulted as in torch.optim."""

import copy
import numbers

import numpy as np


def _plain(name, value):
    """A setting as a Python bool, int or float (numpy scalars included), as the core and the
    model file's JSON header take it."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    raise TypeError(f"{name} must be a number, got {value!r}")


class Optimizer:
    kind = None

    def __init__(self, lr, **options):
        self.lr = _plain("lr", lr)
        self.options = {name: _plain(name, value) for name, value in options.items()}

    def __repr__(self):
        options = dict(self.options)
        if "beta1" in options:  # shown as the constructor (and torch.optim) takes them
            options = {"betas": (options.pop("beta1"), options.pop("beta2")), **options}
        args = ", ".join(f"{k}={v!r}" for k, v in {"lr": self.lr, **options}.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return (type(self) is type(other) and self.lr == other.lr
                and self.options == other.options)

    def config(self):
        """What the core needs to rebuild this optimizer: (kind, options)."""
        return self.kind, dict(self.options)


class SGD(Optimizer):
    kind = "sgd"

    def __init__(self, lr=0.01, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                         weight_decay=weight_decay)


class Adam(Optimizer):
    kind = "adam"

    def __init__(self, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(lr, beta1=betas[0], beta2=betas[1], eps=eps, weight_decay=weight_decay)


class AdamW(Optimizer):
    kind = "adamw"

    def __init__(self, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(lr, beta1=betas[0], beta2=betas[1], eps=eps, weight_decay=weight_decay)


class RMSprop(Optimizer):
    kind = "rmsprop"

    def __init__(self, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        super().__init__(lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                         centered=centered)


class Adagrad(Optimizer):
    kind = "adagrad"

    def __init__(self, lr=0.01, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                 eps=1e-10):
        super().__init__(lr, lr_decay=lr_decay, weight_decay=weight_decay,
                         initial_accumulator_value=initial_accumulator_value, eps=eps)


OPTIMIZERS = {cls.kind: cls for cls in (SGD, Adam, AdamW, RMSprop, Adagrad)}


def get(optimizer, lr=None):
    """An Optimizer from an instance or a name; lr, when given, overrides the instance's."""
    if isinstance(optimizer, str):
        try:
            cls = OPTIMIZERS[optimizer.lower()]
        except KeyError:
            raise ValueError(f"unknown optimizer {optimizer!r}; valid names: "
                             f"{', '.join(OPTIMIZERS)}") from None
        optimizer = cls() if lr is None else cls(lr=lr)
    elif not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a name or a chainrule.optimizers.Optimizer, "
                        f"got {optimizer!r}")
    elif lr is not None and lr != optimizer.lr:
        optimizer = copy.copy(optimizer)
        optimizer.lr = lr
    return optimizer
