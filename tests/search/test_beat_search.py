"""Issue 22 in CI: the smoke search of ``tp06_beat`` end to end on the local Ray (Ray Train executor),
shrunk to 6 cells, 300 steps and 2 trials: the physiology metrics in each trial's MLflow run, the
post-stage (its beat benchmark included), the registry's ``smoke`` alias family, and ``pull`` writing
a card with the physiology figures, the output's units and the scale-factor inputs."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: The CI size of the search file's smoke budget (cells, steps, trials); everything else is the file's.
CI_SMOKE = "smoke: {n_trajectories: 6, steps: 300, val_every: 100, max_trials: 2}"


def _ci_search_file(folder: Path) -> Path:
    """``search_spaces/tp06_beat.yaml`` as it is, with its smoke budget shrunk to ``CI_SMOKE``."""
    text = (REPO / "search_spaces" / "tp06_beat.yaml").read_text()
    text, replaced = re.subn(r"(?m)^(\s*)smoke: \{.*\}$", lambda m: m.group(1) + CI_SMOKE, text)
    assert replaced == 1, "search_spaces/tp06_beat.yaml has no one-line smoke budget to shrink"
    path = folder / "tp06_beat.yaml"  # same name, same experiment: tp06_beat-smoke
    path.write_text(text)
    return path


@pytest.mark.slow
def test_tp06_beat_smoke_search_reaches_registry_and_pull(local_ray, tmp_path, tracking_uri, data_root):
    from mlflow.tracking import MlflowClient

    from fhn_automl.learning.physiology import PHYSIOLOGY_METRICS, VOLTAGE_METRICS
    from fhn_automl.post import run_post_stage
    from fhn_automl.post.registry import registered_model_name
    from fhn_automl.post.settings import post_settings
    from fhn_automl.pull import main as pull_main
    from fhn_automl.search.options import SearchOptions
    from fhn_automl.search.runner import run_search
    from fhn_automl.search.space import load_search_space
    from fhn_automl.search.tracking import FINAL_METRICS, STATUS_TAG, iter_child_runs

    space = load_search_space(_ci_search_file(tmp_path))
    assert space.resources.executor == "train"  # Ray Train per trial, the file's executor
    summary = run_search(SearchOptions(space=space, budget=space.budget("smoke"), tracking_uri=tracking_uri,
                                       storage=str(tmp_path / "ray"), data_root=str(data_root), quiet=True))
    assert not summary.interrupted and sorted(summary.statuses.values()) == ["finished", "finished"]

    # 1. every trial's run holds the physiology metrics of its model on the validation cells
    assert {f"final_full_val_{name}" for name in PHYSIOLOGY_METRICS} <= set(FINAL_METRICS)
    physiology = [f"final_full_val_{name}" for name in VOLTAGE_METRICS]  # tp06_beat: V is its only output
    runs = {run.info.run_id: run for run in iter_child_runs(tracking_uri, "tp06_beat-smoke")}
    assert len(runs) == 2
    for run in runs.values():
        assert run.data.tags[STATUS_TAG] == "finished" and run.data.params["problem"] == "tp06_beat"
        metrics = run.data.metrics
        assert set(physiology) <= set(metrics), sorted(metrics)
        assert "final_full_val_other_rmse_pct" not in metrics
        # V in mV: after 300 steps a network is off by millivolts, not by nothing and not by the whole AP
        assert 0 < metrics["final_full_val_v_rmse"] <= metrics["final_full_val_v_rmse_max_cell"] < 150
        assert metrics["final_full_val_ap_mismatch_cells"] >= 0

    # 2. the post-stage (beat benchmark against the cell model's solver) registers under the smoke family
    # the smoke preset, with the verdict on 4 fresh cells at 2 solver steps (its own figures are not the point)
    settings = post_settings("smoke").replace(beat_cells=4, beat_dts=(0.1, 0.25))
    post = run_post_stage("tp06_beat-smoke", tracking_uri, tmp_path / "post", budget=settings, backend="eager",
                          device="cpu", repeats=1, tune_points=4_096, front_rounds=3, quiet=True)
    assert post.registered and all(r["alias"].startswith("smoke") for r in post.registered)
    assert (tmp_path / "post" / "benchmark_tp06_beat.md").exists()
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    version = client.get_model_version_by_alias(registered_model_name("tp06_beat"), "smoke")
    logged = runs[version.run_id].data.metrics
    for name in VOLTAGE_METRICS:
        tagged = float(version.tags[f"fhn_automl.val_{name}"])
        assert tagged == pytest.approx(logged[f"final_full_val_{name}"], nan_ok=True)

    # 3. pull: the card says what the inputs are, the output's units and the physiology figures
    assert pull_main(["tp06_beat", "--alias", "smoke", "--to", str(tmp_path / "pulled"),
                      "--tracking-uri", tracking_uri]) == 0
    index = json.loads((tmp_path / "pulled" / "index.json").read_text())
    first = tmp_path / "pulled" / index["models"][0]["folder"]
    card = json.loads((first / "model_card.json").read_text())
    assert card["outputs"] == [{"name": "V", "units": "mV"}]
    units = {i["name"]: i["units"] for i in card["inputs"]}
    assert units["t"].startswith("ms") and all("scale factor" in units[f"{p}_scale"]
                                               for p in ("gKr", "gKs", "gCaL", "gNa"))
    figures = card["beat"]["physiology"]
    assert "other_rmse_pct" not in figures
    for name in VOLTAGE_METRICS:
        assert math.isclose(figures[name], logged[f"final_full_val_{name}"], rel_tol=1e-9) or (
            math.isnan(figures[name]) and math.isnan(logged[f"final_full_val_{name}"]))
    markdown = (first / "model_card.md").read_text()
    assert "## Physiology on the validation cells" in markdown and "`apd90_err_pct`" in markdown
