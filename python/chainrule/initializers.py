"""Weight initializers. Each takes (n_in, n_out, rng) and returns an (n_in, n_out) float64 array.

Glorot/Xavier: Var(W) = 2/(n_in + n_out); He/Kaiming: 2/n_in; LeCun: 1/n_in (uniform variants
draw from [−limit, limit] with limit = √(3·Var)). All draw from the model's seeded generator.
Biases start at zero.

Defaults follow the activation: He for the ReLU family (keeps the variance of z through layers
whose half of the inputs are zeroed), Glorot otherwise.
"""

import numpy as np


def glorot_uniform(n_in, n_out, rng):
    limit = np.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-limit, limit, size=(n_in, n_out))


def glorot_normal(n_in, n_out, rng):
    return rng.normal(0.0, np.sqrt(2.0 / (n_in + n_out)), size=(n_in, n_out))


def he_uniform(n_in, n_out, rng):
    limit = np.sqrt(6.0 / n_in)
    return rng.uniform(-limit, limit, size=(n_in, n_out))


def he_normal(n_in, n_out, rng):
    return rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_in, n_out))


def lecun_normal(n_in, n_out, rng):
    return rng.normal(0.0, np.sqrt(1.0 / n_in), size=(n_in, n_out))


def lecun_uniform(n_in, n_out, rng):
    limit = np.sqrt(3.0 / n_in)
    return rng.uniform(-limit, limit, size=(n_in, n_out))


def zeros(n_in, n_out, rng):
    return np.zeros((n_in, n_out))


INITIALIZERS = {f.__name__: f for f in
                (glorot_uniform, glorot_normal, he_uniform, he_normal, lecun_normal, lecun_uniform,
                  zeros)}
# Aliases users bring from other libraries.
INITIALIZERS.update(xavier_uniform=glorot_uniform, xavier_normal=glorot_normal,
                    kaiming_uniform=he_uniform, kaiming_normal=he_normal)


def default_for(activation):
    return "he_normal" if activation in ("relu", "leaky_relu") else "glorot_uniform"


def get(name):
    if callable(name):
        return name
    try:
        return INITIALIZERS[name]
    except KeyError:
        raise ValueError(f"unknown initializer {name!r}; valid names: "
                         f"{', '.join(sorted(INITIALIZERS))}") from None
