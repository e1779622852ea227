"""Shared test configuration: markers are declared in pyproject.toml ([tool.pytest.ini_options])."""

import os

# One thread per test process keeps the 2-core CI machine responsive and results deterministic.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
# The MAC key of Tune's state (search.tune_state) for this test run: tests never write to ~/.config.
os.environ.setdefault("FHN_AUTOML_TUNE_STATE_KEY", os.urandom(32).hex())
