"""The performance build: ISA dispatch and thread-count-independent (bit-identical) training."""

import os
import pickle
import subprocess
import sys
import threading

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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 784, 256), (33, 17, 5), (300, 200, 500), (1024, 784, 256)])
def test_core_matmul_matches_numpy(dtype, shape):
    m, k, n = shape
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    out = np.full((m, n), np.nan, dtype)
    cr._core.matmul(a, b, out)
    tol = 1e-4 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(out, a.astype(np.float64) @ b.astype(np.float64),
                               rtol=tol, atol=tol * np.sqrt(k))


def test_core_matmul_refuses_bad_output():
    a = np.ones((4, 3), np.float32)
    b = np.ones((3, 2), np.float32)
    with pytest.raises(TypeError):  # out is written in place: never converted
        cr._core.matmul(a, b, np.empty((4, 2), np.float64))
    with pytest.raises(TypeError):
        cr._core.matmul(a, b, np.empty((4, 2), np.float32, order="F"))
    with pytest.raises(ValueError, match="shape"):
        cr._core.matmul(a, b, np.empty((4, 3), np.float32))
    square = np.ones((3, 3), np.float32)
    with pytest.raises(ValueError, match="share memory"):
        cr._core.matmul(square, square, square)


def test_zen4_keeps_avx2_and_other_cpus_take_avx512():
    assert _dispatch.prefers_avx2_over_avx512(("AuthenticAMD", 0x19))      # Zen 4
    assert not _dispatch.prefers_avx2_over_avx512(("AuthenticAMD", 0x1A))  # Zen 5
    assert not _dispatch.prefers_avx2_over_avx512(("GenuineIntel", 6))


def test_avx512_cpus_get_the_v4_module_and_zen4_the_v3_one():
    import importlib.util
    if "v4" not in _dispatch.supported_levels():
        pytest.skip("this CPU has no AVX-512")
    if _dispatch.prefers_avx2_over_avx512():
        # Zen 4: its AVX-512 products measured slower than the v3 module's (docs/performance.md)
        assert _isa_in_subprocess(None) == "x86-64-v3"
        assert _isa_in_subprocess("v4") == "x86-64-v4"  # still there when asked for
        return
    if importlib.util.find_spec("chainrule._core_v4") is None:
        # The default build has v4; in CI its absence is a failure, not a reason to skip.
        if os.environ.get("CI"):
            pytest.fail("chainrule._core_v4 is missing from the default build")
        pytest.skip("built without the v4 module (CHAINRULE_ISA_LEVELS)")
    assert _isa_in_subprocess(None) == "x86-64-v4"


def test_inference_fast_path_agrees_with_the_converting_path():
    """A C-contiguous array of the model's dtype goes straight to the core; others are
    converted first. Both give the same outputs and the same error for a NaN."""
    model = cr.Sequential([cr.Dense(20, 16), cr.Dense(16, 4)], seed=0)
    X = np.random.default_rng(0).random((33, 20), dtype=np.float32)
    fast = model.predict_proba(X)
    for converted in (np.asfortranarray(X), X.astype(np.float64).astype(np.float32)[:, ::1],
                      X.tolist()):
        np.testing.assert_array_equal(model.predict_proba(converted), fast)
    bad = X.copy()
    bad[7, 3] = np.inf
    messages = []
    for variant in (bad, np.asfortranarray(bad)):  # fast path, then the converting path
        with pytest.raises(ValueError, match="NaN or infinity") as info:
            model.predict_proba(variant)
        messages.append(str(info.value))
    assert messages[0] == messages[1] and "row 7, column 3" in messages[0]


def test_only_what_the_core_takes_as_it_is_goes_the_fast_path():
    """predict_if_ready answers None, and leaves the input to the converting path, for anything
    but a C-contiguous (n > 0, n_inputs) ndarray of the network's dtype."""
    model = cr.Sequential([cr.Dense(5, 3)], seed=0)
    X = np.random.default_rng(1).random((4, 5), dtype=np.float32)
    np.testing.assert_array_equal(model._net.predict_if_ready(X), model._net.predict(X))
    # An unpickled array's dtype is a separate object, equal to float32: still ready.
    unpickled = pickle.loads(pickle.dumps(X))
    np.testing.assert_array_equal(model._net.predict_if_ready(unpickled), model._net.predict(X))
    assert cr._core.first_nonfinite(unpickled) == -1
    not_ready = [X.astype(np.float64), X.astype(">f4"), np.asfortranarray(X), X[:, :4],
                 X[:0], X[0], X.tolist(), np.ma.masked_array(X)]
    for candidate in not_ready:
        assert model._net.predict_if_ready(candidate) is None, candidate
    # A strided view is refused here although the core could take it: the converting path
    # copies it, as it did before the fast path existed.
    assert model._net.predict_if_ready(np.ones((4, 10), np.float32)[:, ::2]) is None


def test_one_row_predictions_repeat_bit_for_bit():
    """One row takes the core's one-row kernel, which reads W's segments forwards and backwards
    on alternate calls: the bits must not depend on that, and must match the batch's values."""
    model = cr.Sequential([cr.Dense(300, 64), cr.Dense(64, 32), cr.Dense(32, 10)], seed=0)
    X = np.random.default_rng(2).random((3, 300), dtype=np.float32)
    batch = model.predict_proba(X)
    for row in range(len(X)):
        calls = [model.predict_proba(X[row:row + 1]) for _ in range(3)]
        assert np.array_equal(calls[0], calls[1]) and np.array_equal(calls[1], calls[2])
        np.testing.assert_allclose(calls[0][0], batch[row], rtol=1e-5, atol=1e-7)


def test_predict_waits_for_a_training_chunk_holding_the_parameters():
    """The read side that predict takes in C++ is the lock Python's write side holds."""
    model = cr.Sequential([cr.Dense(5, 3)], seed=0)
    X = np.ones((2, 5), np.float32)
    done = threading.Event()

    def predict():
        model.predict_proba(X)
        done.set()
    with model._params_lock.write():
        thread = threading.Thread(target=predict)
        thread.start()
        assert not done.wait(0.2), "predict ran while the write side was held"
    assert done.wait(30)
    thread.join()


def _thread_env_in_subprocess(**env_values):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(env_values)
    code = ("import os, chainrule; "
            "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    return tuple(out.stdout.split())


def test_openmp_waiting_defaults_leave_the_users_choice_alone():
    # By default: sleep, after a short spin (docs/performance.md, "Threads on small and shared
    # machines"); whatever the user set of either variable is kept, and the other not forced
    # over it.
    assert _thread_env_in_subprocess() == ("passive", "300000")
    assert _thread_env_in_subprocess(OMP_WAIT_POLICY="active") == ("active", "None")
    assert _thread_env_in_subprocess(OMP_WAIT_POLICY="passive") == ("passive", "None")
    assert _thread_env_in_subprocess(GOMP_SPINCOUNT="5") == ("passive", "5")
