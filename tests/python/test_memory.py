"""Peak memory of loading MNIST and training on it stays within the data's size + 100 MiB."""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "memory.py"


def test_peak_rss_training_on_mnist_is_data_plus_at_most_100_mib(data_dir):
    mnist = data_dir / "mnist"
    if not SCRIPT.exists():
        pytest.fail(f"{SCRIPT} is missing")
    out = subprocess.run([sys.executable, str(SCRIPT), "--data", str(mnist)],
                         capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("peak RSS"))
    # "peak RSS: 279 MiB = data + 69 MiB (...)"
    over = int(line.split("data + ")[1].split(" MiB")[0])
    assert over <= 100, out
