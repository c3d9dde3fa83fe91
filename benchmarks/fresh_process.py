"""Runs a benchmark snippet in a fresh Python process: the helper of the scripts that compare
builds or ISA levels (bench_native.py, isa_levels.py), where each measurement needs its own
interpreter so that the module under test is the one imported."""

import json
import os
import subprocess
import sys


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
