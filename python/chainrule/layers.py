"""Layer descriptions. A Dense layer computes z = a_prev·W + b and a = σ(z); once its model is
built, W, b and the gradients dW, db are numpy views into the C++ buffers."""

import numbers

from . import initializers


class Dense:
    """A fully connected layer of n_out neurons, each fed by all n_in inputs.

    activation: identity, sigmoid, tanh, relu, leaky_relu or softmax. None picks relu for a
    hidden layer and, for the output layer, what the loss needs (softmax for cross_entropy,
    sigmoid for binary_cross_entropy, identity for mse).
    init: a name from chainrule.initializers or a function (n_in, n_out, rng) -> array;
    None picks He for the ReLU family and Glorot otherwise. Biases start at zero.
    dropout: probability of zeroing each of this layer's outputs while training.
    """

    def __init__(self, n_in, n_out, activation=None, init=None, dropout=0.0):
        for name, value in (("n_in", n_in), ("n_out", n_out)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"Dense {name} must be a positive integer, got {value!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.n_in, self.n_out = int(n_in), int(n_out)
        self.activation = activation
        self.init = init
        self.dropout = float(dropout)
        self._views = None  # (W, b, dW, db) once built

    def __repr__(self):
        extra = f", dropout={self.dropout}" if self.dropout else ""
        return f"Dense({self.n_in}, {self.n_out}, activation={self.activation!r}{extra})"

    def _bind(self, views):
        self._views = views

    def _view(self, i):
        if self._views is None:
            raise RuntimeError("this layer is not part of a model yet")
        return self._views[i]

    @property
    def W(self):
        """Weights, shape (n_in, n_out): W[i, j] connects input i to neuron j."""
        return self._view(0)

    @W.setter
    def W(self, value):
        self._view(0)[...] = value

    @property
    def b(self):
        """Biases, shape (n_out,)."""
        return self._view(1)

    @b.setter
    def b(self, value):
        self._view(1)[...] = value

    @property
    def dW(self):
        """∂C/∂W of the last gradient computation, shape (n_in, n_out)."""
        return self._view(2)

    @property
    def db(self):
        """∂C/∂b of the last gradient computation, shape (n_out,)."""
        return self._view(3)

    def initial_weights(self, rng):
        name = self.init or initializers.default_for(self.activation)
        return initializers.get(name)(self.n_in, self.n_out, rng)


class Dropout:
    """Keras-style marker: Dropout(p) after a Dense layer sets that layer's dropout to p."""

    def __init__(self, rate):
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)

    def __repr__(self):
        return f"Dropout({self.rate})"
