"""Every optimizer against an independent numpy implementation of the update rule torch.optim
documents, on a small float64 problem: every parameter after every step, to 1e-10.

The reference network (tanh hidden layer, identity output, squared error) and its gradients are
written here in numpy, so the check covers gradients, the fit loop, the L2 penalty, clipping and
the per-step learning rates as well as the update rules.
"""

import math

import numpy as np
import pytest

import chainrule as cr
from chainrule import schedules

TOL = 1e-10
N_STEPS = 6


def problem():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(12, 4))
    Y = rng.normal(size=(12, 3))
    return X, Y


def make_model(optimizer):
    model = cr.Sequential([cr.Dense(4, 5, activation="tanh"), cr.Dense(5, 3, activation="identity")],
                          loss="mse", dtype="float64", optimizer=optimizer, seed=3)
    # Biases start at zero; give them values so that every term of every rule is exercised.
    rng = np.random.default_rng(11)
    for layer in model.layers:
        layer.b = rng.normal(scale=0.1, size=layer.b.shape)
    return model


def flat(params):
    return np.concatenate([np.ravel(p) for p in params])


def grads_numpy(params, X, Y, l2=0.0):
    """Gradients of the mean over the batch of C_k = Σ_j (a_j − y_j)², plus l2·W on weights."""
    W1, b1, W2, b2 = params
    n = X.shape[0]
    a1 = np.tanh(X @ W1 + b1)
    a2 = a1 @ W2 + b2
    d2 = 2.0 * (a2 - Y) / n
    d1 = (d2 @ W2.T) * (1.0 - a1 ** 2)
    return [X.T @ d1 + l2 * W1, d1.sum(0), a1.T @ d2 + l2 * W2, d2.sum(0)]


def clip(grads, max_norm):
    norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
    if max_norm and norm > max_norm:
        return [g * (max_norm / (norm + 1e-6)) for g in grads]
    return grads


# ----- the documented rules (torch.optim), one step for one tensor; state is a dict -----------

def sgd(p, g, s, t, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    g = g + weight_decay * p
    if momentum:
        s["buf"] = g.copy() if t == 1 else momentum * s["buf"] + (1 - dampening) * g
        g = g + momentum * s["buf"] if nesterov else s["buf"]
    return p - lr * g


def adam(p, g, s, t, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    b1, b2 = betas
    if decoupled:
        p = p * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
    m_hat = s["m"] / (1 - b1 ** t)
    v_hat = s["v"] / (1 - b2 ** t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps)


def adamw(p, g, s, t, lr, weight_decay=0.01, **kw):
    return adam(p, g, s, t, lr, weight_decay=weight_decay, decoupled=True, **kw)


def rmsprop(p, g, s, t, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
            centered=False):
    g = g + weight_decay * p
    s["v"] = alpha * s.get("v", 0.0) + (1 - alpha) * g * g
    v = s["v"]
    if centered:
        s["g"] = alpha * s.get("g", 0.0) + (1 - alpha) * g
        v = v - s["g"] ** 2
    if momentum > 0:
        s["buf"] = momentum * s.get("buf", 0.0) + g / (np.sqrt(v) + eps)
        return p - lr * s["buf"]
    return p - lr * g / (np.sqrt(v) + eps)


def adagrad(p, g, s, t, lr, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
            eps=1e-10):
    g = g + weight_decay * p
    clr = lr / (1 + (t - 1) * lr_decay)
    s["sum"] = s.get("sum", initial_accumulator_value) + g * g
    return p - clr * g / (np.sqrt(s["sum"]) + eps)


CASES = [
    ("sgd", cr.optimizers.SGD(lr=0.1), sgd, {}),
    ("sgd_wd", cr.optimizers.SGD(lr=0.1, weight_decay=0.05), sgd, {"weight_decay": 0.05}),
    ("momentum", cr.optimizers.SGD(lr=0.1, momentum=0.9), sgd, {"momentum": 0.9}),
    ("dampening", cr.optimizers.SGD(lr=0.1, momentum=0.8, dampening=0.3), sgd,
     {"momentum": 0.8, "dampening": 0.3}),
    ("nesterov", cr.optimizers.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01), sgd,
     {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("adam", cr.optimizers.Adam(lr=0.01), adam, {}),
    ("adam_l2", cr.optimizers.Adam(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
     adam, {"betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    ("adamw", cr.optimizers.AdamW(lr=0.01, weight_decay=0.1), adamw, {"weight_decay": 0.1}),
    ("rmsprop", cr.optimizers.RMSprop(lr=0.01), rmsprop, {}),
    ("rmsprop_momentum", cr.optimizers.RMSprop(lr=0.01, momentum=0.9, weight_decay=0.01),
     rmsprop, {"momentum": 0.9, "weight_decay": 0.01}),
    ("rmsprop_centered", cr.optimizers.RMSprop(lr=0.01, alpha=0.9, centered=True, momentum=0.5),
     rmsprop, {"alpha": 0.9, "centered": True, "momentum": 0.5}),
    ("adagrad", cr.optimizers.Adagrad(lr=0.1), adagrad, {}),
    ("adagrad_decay", cr.optimizers.Adagrad(lr=0.1, lr_decay=0.05, initial_accumulator_value=0.1,
                                            weight_decay=0.02), adagrad,
     {"lr_decay": 0.05, "initial_accumulator_value": 0.1, "weight_decay": 0.02}),
]


def reference_run(params, X, Y, rule, kw, lr, n_steps, batch_size=None, l2=0.0, max_norm=0.0,
                  rates=None):
    """n_steps optimizer steps over consecutive batches (no shuffling), one state per tensor."""
    params = [p.copy() for p in params]
    states = [{} for _ in params]
    n = X.shape[0]
    batch_size = batch_size or n
    trajectory = []
    for t in range(1, n_steps + 1):
        start = ((t - 1) * batch_size) % n
        xb, yb = X[start:start + batch_size], Y[start:start + batch_size]
        grads = clip(grads_numpy(params, xb, yb, l2), max_norm)
        step_lr = rates[t - 1] if rates is not None else lr
        params = [rule(p, g, s, t, step_lr, **kw) for p, g, s in zip(params, grads, states)]
        trajectory.append([p.copy() for p in params])
    return trajectory, states


def model_params(model):
    return [a for layer in model.layers for a in (layer.W.copy(), layer.b.copy())]


@pytest.mark.parametrize("name,optimizer,rule,kw", CASES, ids=[c[0] for c in CASES])
def test_optimizer_matches_documented_rule(name, optimizer, rule, kw):
    X, Y = problem()
    model = make_model(optimizer)
    start = model_params(model)
    expected, _ = reference_run(start, X, Y, rule, kw, optimizer.lr, N_STEPS)
    for step in range(N_STEPS):
        model.fit(X, Y, epochs=1, batch_size=X.shape[0], shuffle=False, verbose=0)
        for got, want in zip(model_params(model), expected[step]):
            np.testing.assert_allclose(got, want, rtol=0, atol=TOL,
                                       err_msg=f"{name}, step {step + 1}")
    assert model.optimizer_state["step"] == N_STEPS


def test_optimizer_state_is_visible_with_torch_names():
    X, Y = problem()
    model = make_model(cr.optimizers.Adam(lr=0.01))
    start = model_params(model)
    model.fit(X, Y, epochs=3, batch_size=12, shuffle=False, verbose=0)
    _, states = reference_run(start, X, Y, adam, {}, 0.01, 3)
    state = model.optimizer_state
    assert set(state) == {"step", "exp_avg", "exp_avg_sq"} and state["step"] == 3
    np.testing.assert_allclose(state["exp_avg"], flat([s["m"] for s in states]), atol=TOL)
    np.testing.assert_allclose(state["exp_avg_sq"], flat([s["v"] for s in states]), atol=TOL)
    model._use_optimizer(cr.optimizers.SGD(lr=0.1, momentum=0.9))
    assert set(model.optimizer_state) == {"step", "momentum_buffer"}  # fresh state
    assert not model.optimizer_state["momentum_buffer"].any()
    rms = make_model(cr.optimizers.RMSprop(centered=True, momentum=0.5)).optimizer_state
    assert set(rms) == {"step", "square_avg", "grad_avg", "momentum_buffer"}
    assert set(make_model("adagrad").optimizer_state) == {"step", "sum"}


def test_optimizer_state_survives_save_and_load(tmp_path):
    X, Y = problem()
    opt = cr.optimizers.Adam(lr=0.01)
    a = make_model(opt)
    a.fit(X, Y, epochs=2, batch_size=4, shuffle=False, verbose=0)
    a.save(tmp_path / "m.npz")
    b = cr.load(tmp_path / "m.npz")
    for key, value in a.optimizer_state.items():
        np.testing.assert_array_equal(b.optimizer_state[key], value)
    a.fit(X, Y, epochs=2, batch_size=4, shuffle=False, verbose=0)
    b.fit(X, Y, epochs=2, batch_size=4, shuffle=False, verbose=0)
    np.testing.assert_array_equal(a._net.params, b._net.params)


def test_l2_and_clipping_match_reference():
    X, Y = problem()
    model = make_model(cr.optimizers.SGD(lr=0.1, momentum=0.9))
    start = model_params(model)
    model.fit(X, Y, epochs=1, batch_size=4, shuffle=False, verbose=0, l2=0.03, max_grad_norm=0.5)
    model.fit(X, Y, epochs=1, batch_size=4, shuffle=False, verbose=0, l2=0.03, max_grad_norm=0.5)
    # 3 batches per epoch: compare after 6 steps with a 6-step reference.
    expected, _ = reference_run(start, X, Y, sgd, {"momentum": 0.9}, 0.1, 6, batch_size=4,
                                l2=0.03, max_norm=0.5)
    for got, want in zip(model_params(model), expected[-1]):
        np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    # Clipping was active: the unclipped run differs.
    free, _ = reference_run(start, X, Y, sgd, {"momentum": 0.9}, 0.1, 6, batch_size=4, l2=0.03)
    assert not np.allclose(flat(free[-1]), flat(expected[-1]), atol=1e-6)


def test_per_step_cosine_with_warmup_rates_reach_the_core():
    X, Y = problem()
    model = make_model(cr.optimizers.SGD(lr=0.2, momentum=0.5))
    start = model_params(model)
    epochs, batch = 4, 3                      # 4 steps per epoch, 16 steps
    total, warmup = 16, 4                     # warmup_epochs=1 -> 4 steps
    rates = [0.2 * (t + 1) / warmup if t < warmup else
             0.05 + (0.2 - 0.05) * (1 + math.cos(math.pi * (t - warmup) / (total - warmup))) / 2
             for t in range(total)]
    expected, _ = reference_run(start, X, Y, sgd, {"momentum": 0.5}, None, total,
                                batch_size=batch, rates=rates)
    history = model.fit(X, Y, epochs=epochs, batch_size=batch, shuffle=False, verbose=0,
                        schedule=schedules.CosineDecay(min_lr=0.05, warmup_epochs=1))
    for got, want in zip(model_params(model), expected[-1]):
        np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    np.testing.assert_allclose(history["lr"], [rates[4 * e + 3] for e in range(epochs)])


@pytest.mark.parametrize("optimizer", [
    cr.optimizers.SGD(lr=0.1, momentum=0.9, nesterov=True),
    cr.optimizers.Adam(lr=0.002, betas=(0.8, 0.99), eps=1e-7),
    cr.optimizers.AdamW(weight_decay=0.1),
    cr.optimizers.RMSprop(centered=True, momentum=0.5),
    cr.optimizers.Adagrad(lr_decay=0.01)])
def test_repr_is_the_constructor_call(optimizer):
    """What model.summary() shows can be typed back in: torch.optim's names (betas, not beta1)."""
    assert eval(repr(optimizer), vars(cr.optimizers)) == optimizer


def test_numpy_scalar_settings_are_stored_as_python_numbers(tmp_path):
    """They reach the model file's JSON header, which takes no numpy scalars."""
    optimizer = cr.optimizers.SGD(lr=np.float32(0.1), momentum=np.float32(0.9),
                                  nesterov=np.bool_(True))
    assert type(optimizer.lr) is float and optimizer.options["nesterov"] is True
    X = np.random.default_rng(0).normal(size=(20, 4))
    model = cr.Sequential([cr.Dense(4, 2)], optimizer=optimizer)
    model.fit(X, (X[:, 0] > 0).astype(int), verbose=0)
    model.save(tmp_path / "m.npz")
    assert cr.load(tmp_path / "m.npz").optimizer == optimizer
    with pytest.raises(TypeError, match="momentum must be a number, got 'a'"):
        cr.optimizers.SGD(momentum="a")
