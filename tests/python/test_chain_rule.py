"""The seed's examples worked by hand: a chain of single neurons, and the batch rule."""

import numpy as np

import chainrule as cr


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_chain_of_single_neurons_matches_the_hand_derived_product():
    # x -> neuron 1 -> neuron 2, sigmoid everywhere, C = (a2 - y)^2.
    w1, b1, w2, b2, x, y = 0.7, -0.3, -1.2, 0.4, 0.9, 0.25
    model = cr.Sequential([cr.Dense(1, 1, activation="sigmoid"),
                           cr.Dense(1, 1, activation="sigmoid")], loss="mse", dtype="float64")
    model.set_weights([([[w1]], [b1]), ([[w2]], [b2])])

    z1 = w1 * x + b1
    a1 = sigmoid(z1)
    z2 = w2 * a1 + b2
    a2 = sigmoid(z2)
    dC_da2 = 2 * (a2 - y)                       # ∂C/∂a
    da2_dz2 = a2 * (1 - a2)                     # ∂a/∂z = σ'(z)
    dC_dw2 = a1 * da2_dz2 * dC_da2              # ∂z/∂w = a_prev
    dC_db2 = 1.0 * da2_dz2 * dC_da2             # ∂z/∂b = 1
    dC_da1 = w2 * da2_dz2 * dC_da2              # recursion to the previous neuron
    dC_dw1 = x * a1 * (1 - a1) * dC_da1
    dC_db1 = a1 * (1 - a1) * dC_da1

    grads = model.gradients([[x]], [y])
    assert np.isclose(grads["loss"], (a2 - y) ** 2, rtol=1e-14)
    np.testing.assert_allclose(grads["dW"][1], [[dC_dw2]], rtol=1e-12)
    np.testing.assert_allclose(grads["db"][1], [dC_db2], rtol=1e-12)
    np.testing.assert_allclose(grads["dW"][0], [[dC_dw1]], rtol=1e-12)
    np.testing.assert_allclose(grads["db"][0], [dC_db1], rtol=1e-12)
    np.testing.assert_allclose(grads["dx"], [[w1 * a1 * (1 - a1) * dC_da1]], rtol=1e-12)


def test_batch_gradient_is_the_mean_of_per_sample_gradients():
    rng = np.random.default_rng(0)
    model = cr.Sequential([cr.Dense(4, 5, activation="tanh"), cr.Dense(5, 3)],
                          loss="cross_entropy", dtype="float64", seed=1)
    X, y = rng.normal(size=(7, 4)), rng.integers(0, 3, size=7)
    batch = model.gradients(X, y)
    singles = [model.gradients(X[k:k + 1], y[k:k + 1]) for k in range(len(X))]
    for key in ("dW", "db"):
        for i in range(len(model.layers)):
            mean = np.mean([s[key][i] for s in singles], axis=0)
            np.testing.assert_allclose(batch[key][i], mean, rtol=1e-12, atol=1e-15)
    assert np.isclose(batch["loss"], np.mean([s["loss"] for s in singles]), rtol=1e-12)


def test_micro_batches_accumulate_to_the_full_batch_gradient():
    rng = np.random.default_rng(1)
    model = cr.Sequential([cr.Dense(3, 4, activation="relu"), cr.Dense(4, 2)],
                          loss="cross_entropy", dtype="float64", seed=2)
    X, y = rng.normal(size=(6, 3)), rng.integers(0, 2, size=6).astype(np.int32)
    full = model.gradients(X, y)
    net = model._net
    net.zero_grad()
    for part in (slice(0, 2), slice(2, 6)):  # each part scaled by 1/n of the whole batch
        net.accumulate_gradients(X[part], y[part], 1.0 / len(X))
    for i, layer in enumerate(model.layers):
        np.testing.assert_allclose(layer.dW, full["dW"][i], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(layer.db, full["db"][i], rtol=1e-12, atol=1e-15)
