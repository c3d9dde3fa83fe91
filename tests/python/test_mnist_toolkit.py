"""MNIST, 784-256-128-10 ReLU: Adam and SGD with Nesterov momentum each reach >= 98.0% test
accuracy within 10 epochs (batch 128, per-step cosine decay of the learning rate)."""

import time

import pytest

import chainrule as cr
from chainrule import schedules

CONFIGS = {
    "adam": lambda: cr.optimizers.Adam(lr=1e-3),
    "sgd_nesterov": lambda: cr.optimizers.SGD(lr=0.05, momentum=0.9, nesterov=True),
}


@pytest.fixture(scope="module")
def mnist(data_dir):
    return cr.datasets.load_mnist(data_dir / "mnist")


@pytest.mark.parametrize("name", list(CONFIGS))
def test_mnist_98_percent_within_10_epochs(mnist, name):
    (X, y), (Xt, yt) = mnist
    model = cr.Sequential([cr.Dense(784, 256, activation="relu"),
                           cr.Dense(256, 128, activation="relu"), cr.Dense(128, 10)],
                          optimizer=CONFIGS[name](), seed=0)
    start = time.perf_counter()
    history = model.fit(X, y, epochs=10, batch_size=128, schedule=schedules.CosineDecay(),
                        verbose=0)
    took = time.perf_counter() - start
    accuracy = model.evaluate(Xt, yt)["accuracy"]
    print(f"MNIST 784-256-128-10 {name}: test accuracy {accuracy:.4f} after "
          f"{len(history)} epochs, {took:.1f}s training")
    assert len(history) == 10
    assert accuracy >= 0.980
