import importlib.util
import os
from pathlib import Path

import pytest

# The `test` extra's optional modules. Some test files skip without them (pytest.importorskip),
# for a checkout without the extra; under CI a missing one would hide whole files, so it fails.
TEST_EXTRA_MODULES = ("sklearn", "matplotlib", "hypothesis")


def pytest_configure(config):
    if os.environ.get("CI"):
        missing = [m for m in TEST_EXTRA_MODULES if importlib.util.find_spec(m) is None]
        if missing:
            raise pytest.UsageError(f"CI is set but {', '.join(missing)} cannot be imported: "
                                    'pip install ".[test]"')


@pytest.fixture(scope="session")
def data_dir():
    """The real datasets (../shared/data), given by CHAINRULE_TEST_DATA. In CI it must be set."""
    path = os.environ.get("CHAINRULE_TEST_DATA")
    if not path:
        if os.environ.get("CI"):
            pytest.fail("CHAINRULE_TEST_DATA is not set; .ci/run sets it to ../shared/data")
        pytest.skip("set CHAINRULE_TEST_DATA to the directory holding mnist/ and fashion-mnist/")
    path = Path(path)
    if not (path / "mnist").is_dir():
        pytest.fail(f"CHAINRULE_TEST_DATA={path} has no mnist/ directory")
    return path
