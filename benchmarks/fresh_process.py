"""Runs a benchmark snippet in a fresh Python process: the helper of the scripts that compare
builds or ISA levels (bench_native.py, isa_levels.py), where each measurement needs its own
interpreter so that the module under test is the one imported."""

import json
import os
import subprocess
import sys

# The parts a snippet is built from. PRELUDE: one thread, a seeded generator `rng`, and
# `result`, the dict that EPILOGUE prints as JSON.
PRELUDE = r"""
import json, statistics, time
import numpy as np
import chainrule as cr
cr.set_num_threads(1)
rng = np.random.default_rng(0)
result = {"isa": cr._core.ISA, "file": cr._core.__file__}
"""

# Training of 784-256-128-10 (SGD momentum 0.9, float32) on SAMPLES random rows at each batch
# size of BATCHES, after a warm-up epoch on 2048 rows: result["train B"] in samples/s. Leaves
# X for the parts after it.
TRAINING = r"""
X = rng.random((SAMPLES, 784), dtype=np.float32)
y = rng.integers(0, 10, SAMPLES).astype(np.int32)
for batch in BATCHES:
    model = cr.Sequential([cr.Dense(784, 256), cr.Dense(256, 128), cr.Dense(128, 10)], seed=0,
                          optimizer=cr.optimizers.SGD(lr=0.01, momentum=0.9))
    model.fit(X[:2048], y[:2048], epochs=1, batch_size=batch, verbose=0)
    t = time.perf_counter()
    model.fit(X, y, epochs=1, batch_size=batch, verbose=0)
    result[f"train {batch}"] = SAMPLES / (time.perf_counter() - t)
"""

EPILOGUE = "print(json.dumps(result))\n"


def run_snippet(template, samples, batches, **env):
    """Run template, with SAMPLES and BATCHES filled in, in a new interpreter outside the
    checkout (so the installed chainrule is imported), with CHAINRULE_ISA cleared and the
    given environment variables set (None: left unset). Returns the JSON object the snippet
    prints last."""
    child_env = dict(os.environ)
    child_env.pop("CHAINRULE_ISA", None)
    child_env.update({name: value for name, value in env.items() if value is not None})
    code = template.replace("SAMPLES", str(samples)).replace("BATCHES", repr(batches))
    out = subprocess.run([sys.executable, "-c", code], env=child_env, cwd="/",
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])
