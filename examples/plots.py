"""Draw the plots of docs/backprop.md into a directory (default: ./plots):

    python examples/plots.py [OUTDIR]

curves.png     training curves of a 64-32-10 ReLU net on the bundled digits (train vs test)
weights.png    its 32 first-layer neurons, each one's 64 input weights as an 8×8 image
network.png    a trained 4-6-5-3 tanh network: weights as colour (sign) and width (size)
gradients.png  the same network with ∂C/∂W on 16 samples, neurons shaded by activation
summary.png    all of it for the digits model, as `chainrule train --plot` draws it
"""

import os
import sys

import numpy as np

import chainrule as cr
from chainrule import plots


def main(out="plots"):
    os.makedirs(out, exist_ok=True)
    (X, y), (Xt, yt) = cr.datasets.load_digits()
    model = cr.Sequential([cr.Dense(64, 32, activation="relu"), cr.Dense(32, 10)], seed=0)
    model.fit(X, y, epochs=20, lr=0.1, validation_data=(Xt, yt), verbose=0)
    plots.plot_history(model, path=os.path.join(out, "curves.png"))
    plots.plot_weights(model, path=os.path.join(out, "weights.png"))
    plots.plot_model(model, path=os.path.join(out, "summary.png"))

    rng = np.random.default_rng(0)
    Xs, ys = rng.normal(size=(16, 4)), rng.integers(0, 3, size=16)
    small = cr.Sequential([cr.Dense(4, 6, activation="tanh"), cr.Dense(6, 5, activation="tanh"),
                           cr.Dense(5, 3)], seed=2)
    small.fit(Xs, ys, epochs=50, lr=0.1, verbose=0)
    plots.plot_network(small, path=os.path.join(out, "network.png"))
    plots.plot_network(small, Xs, ys, gradients=True, path=os.path.join(out, "gradients.png"))
    print(f"wrote curves.png, weights.png, summary.png, network.png, gradients.png to {out}/")


if __name__ == "__main__":
    main(*sys.argv[1:])
