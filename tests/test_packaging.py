"""A non-editable install runs without the checkout: wheel -> pip install --target -> search from elsewhere.

The wheel is built offline from a copy of the build inputs (``pip wheel --no-build-isolation`` uses
this environment's setuptools; a copy, so a stale ``build/`` folder of the checkout cannot leak old
modules into it), installed with ``--no-deps`` into a folder put first on ``PYTHONPATH``, and run
from a folder outside the repository: the search files and the CUDA sources must come from the
wheel (``fhn_automl/package_data/``), not from the checkout. ~1-2 min on two busy cores: ``slow``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: what the build reads (pyproject.toml, setup.py, MANIFEST.in and the README named as the readme)
BUILD_INPUTS = ("fhn_automl", "search_spaces", "cuda", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md")

pytestmark = pytest.mark.slow


def _run(args: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: int) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, source / name)
    _run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
          "-w", str(root / "dist")], cwd=root, timeout=300)
    [wheel] = (root / "dist").glob("fhn_automl-*.whl")
    site = root / "site"
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
         cwd=root, timeout=300)
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "FHN_AUTOML_"))}
    # the installed copy first; RAY_ADDRESS=local starts a Ray of this process' own instead of joining
    # one already running on the machine (whose workers would import another copy)
    env.update({"PYTHONPATH": str(site), "RAY_ADDRESS": "local"})
    return {"site": site, "cwd": elsewhere, "env": env, "wheel": wheel}


def test_the_wheel_carries_the_search_files_and_the_cuda_sources(installed):
    shipped = installed["site"] / "fhn_automl" / "package_data"
    assert sorted(p.name for p in (shipped / "search_spaces").glob("*.yaml")) == sorted(
        p.name for p in (REPO / "search_spaces").glob("*.yaml"))
    assert sorted(p.name for p in (shipped / "cuda").glob("*.cu")) == sorted(p.name for p in (REPO / "cuda").glob("*.cu"))
    script = ("import fhn_automl, json\n"
              "from fhn_automl.search.space import SEARCH_SPACES_DIR\n"
              "from fhn_automl.physics._euler_cuda import CUDA_SOURCE_DIR\n"
              "print(json.dumps([fhn_automl.__file__, str(SEARCH_SPACES_DIR), str(CUDA_SOURCE_DIR)]))")
    module, spaces, cuda = json.loads(_run([sys.executable, "-c", script], cwd=installed["cwd"], env=installed["env"],
                                           timeout=120))
    assert Path(module).is_relative_to(installed["site"])
    assert Path(spaces) == shipped / "search_spaces" and Path(cuda) == shipped / "cuda"


def test_the_installed_copy_runs_the_dry_run_and_the_smoke_search(installed):
    python = [sys.executable, "-m", "fhn_automl.search", "problem_b_s", "--budget", "smoke"]
    dry = _run(python + ["--dry-run"], cwd=installed["cwd"], env=installed["env"], timeout=120)
    assert "problem_b_s.yaml at budget smoke: 3 trial(s)" in dry
    # a Tune function per trial (not Train's worker group) keeps this under ~2 minutes on two cores;
    # the trials still run in Ray worker processes, which must import the installed copy too
    _run(python + ["--no-post", "--executor", "function", "--quiet"], cwd=installed["cwd"], env=installed["env"],
         timeout=600)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{installed['cwd'] / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("problem_b_s-smoke")
    runs = client.search_runs([experiment.experiment_id])
    [parent] = [r for r in runs if r.data.tags.get("fhn_automl.role") == "search"]
    # the search file the run used is the wheel's copy
    assert Path(parent.data.params["search_file"]).is_relative_to(installed["site"])
    trials = [r for r in runs if r.data.tags.get("fhn_automl.role") == "trial"]
    assert len(trials) == 3 and all(r.data.tags.get("fhn_automl.trial_status") == "finished" for r in trials)
    assert all(r.outputs.model_outputs for r in trials)  # each finished trial's MLflow model
