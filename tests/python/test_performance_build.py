"""The performance build: ISA dispatch and thread-count-independent (bit-identical) training."""

import os
import subprocess
import sys

import numpy as np
import pytest

import chainrule as cr
from chainrule import _dispatch


def _train(threads, sizes=(784, 256, 10), batch=256, seed=0):
    before = cr.get_num_threads()
    cr.set_num_threads(threads)
    try:
        rng = np.random.default_rng(seed)
        X = rng.random((1024, sizes[0]), dtype=np.float32)
        y = rng.integers(0, sizes[-1], 1024).astype(np.int32)
        layers = [cr.Dense(a, b) for a, b in zip(sizes, sizes[1:])]
        model = cr.Sequential(layers, optimizer=cr.optimizers.SGD(lr=0.05, momentum=0.9), seed=1)
        model.fit(X, y, epochs=2, batch_size=batch, verbose=0)
        return [w.copy() for layer in model.layers for w in (layer.W, layer.b)]
    finally:
        cr.set_num_threads(before)


@pytest.mark.parametrize("batch", [32, 256, 1000])
def test_weights_bit_identical_with_1_and_2_threads(batch):
    one, two = _train(1, batch=batch), _train(2, batch=batch)
    for a, b in zip(one, two):
        assert np.array_equal(a, b)


def test_thread_count_round_trip():
    before = cr.get_num_threads()
    cr.set_num_threads(2)
    assert cr.get_num_threads() == (2 if cr._core.has_openmp() else 1)
    cr.set_num_threads(before)


def _isa_in_subprocess(env_value):
    env = dict(os.environ)
    env.pop("CHAINRULE_ISA", None)
    if env_value is not None:
        env["CHAINRULE_ISA"] = env_value
    out = subprocess.run([sys.executable, "-c", "import chainrule; print(chainrule._core.ISA)"],
                         env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_baseline_can_be_forced():
    assert _isa_in_subprocess("baseline") == "baseline"


def test_default_picks_a_level_the_cpu_supports():
    isa = _isa_in_subprocess(None)
    levels = _dispatch.supported_levels()
    if isa == "baseline":
        # no faster build installed for this CPU (non-x86, or built with CHAINRULE_ISA_LEVELS="")
        return
    if isa == "native":
        return
    assert isa.removeprefix("x86-64-") in levels


def test_unknown_isa_is_refused():
    env = dict(os.environ, CHAINRULE_ISA="avx9000")
    out = subprocess.run([sys.executable, "-c", "import chainrule"], env=env,
                         capture_output=True, text=True)
    assert out.returncode != 0 and "CHAINRULE_ISA" in out.stderr


def test_levels_agree_numerically():
    """Baseline and the dispatched build compute the same forward pass up to rounding."""
    code = ("import numpy as np, chainrule as cr; rng = np.random.default_rng(0);"
            "m = cr.Sequential([cr.Dense(64, 32), cr.Dense(32, 10)], seed=3);"
            "np.save('/dev/stdout', m.predict_proba(rng.random((50, 64), dtype=np.float32)))")
    outs = []
    for isa in ("baseline", None):
        env = dict(os.environ)
        env.pop("CHAINRULE_ISA", None)
        if isa:
            env["CHAINRULE_ISA"] = isa
        raw = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             check=True).stdout
        outs.append(np.frombuffer(raw[-50 * 10 * 4:], dtype=np.float32))
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-6)
