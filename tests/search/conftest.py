"""Fixtures of the search tests: one local Ray per session, small search files, a private MLflow store.

Ray starts once (10-15 s on two cores) and every end-to-end test shares it; the one test that needs a
multi-node ``ray.cluster_utils.Cluster`` is moved to the end of the session and shuts it down first.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")

#: A search file small enough for CI: real training, a few hundred steps, a tiny dataset.
TINY_SEARCH = """\
description: tiny B_S grid for the tests
problem: problem_b_s
kind: ddnn
recipe: fast
steps: 600
val_every: 200
n_trajectories: 120
batch_size: 256
layers:
  sequences: {sequences}
search: {{algorithm: grid}}
scheduler: {{type: fifo}}
resources: {{workers: 1, cpus_per_worker: 1}}
"""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ray_cluster: builds its own multi-node Ray cluster; runs last")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Cluster tests shut the shared Ray down, so they go after everything that uses it."""
    items.sort(key=lambda item: item.get_closest_marker("ray_cluster") is not None)


def write_search_file(folder: Path, sequences: list[str], name: str = "tiny_b_s", **fields) -> Path:
    """A search file with one trial per layer sequence; ``fields`` replace top-level lines."""
    text = TINY_SEARCH.format(sequences="[" + ", ".join(f'"{s}"' for s in sequences) + "]")
    for key, value in fields.items():
        lines = [line for line in text.splitlines() if not line.startswith(f"{key}:")]
        text = "\n".join(lines) + f"\n{key}: {value}\n"
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dataset folder for the session: every tiny search reuses the same B_S data."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def local_ray():
    """The session's local Ray (started on first use, again if a cluster test shut it down)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=True, log_to_driver=False,
                 runtime_env={"env_vars": {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2"}})
    yield ray


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"


@pytest.fixture
def make_search_file():
    """``write_search_file`` as a fixture (the tests folder is not a package to import from)."""
    return write_search_file
