"""Single steps of the post-stage and of ``reproduce`` (issue 15 item 6), each called alone: no MLflow run,
no timing, no training."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from fhn_automl.post.settings import post_settings
from fhn_automl.post.stage import PostRequest, PostStageResult, _Phases, mark_front, write_summary
from fhn_automl.post.staging import ForeignOutputFolderError
from fhn_automl.post.thesis_tables import TABLES
from fhn_automl.reproduce import FRESH_ICS, compare_rows, get_plan, reproduce_request


def _table() -> pd.DataFrame:
    """Four timed models of one problem: a dominated one, a duplicate of a front model, and two on the front."""
    rows = [("accurate", 1e-4, 400, 4e-9), ("fast", 1e-3, 100, 1e-9), ("dominated", 2e-3, 200, 2e-9),
            ("copy", 1e-3, 100, 1e-9)]
    return pd.DataFrame([{"run_id": run, "problem": "problem_b_s", "mean_err": err, "macs": macs,
                          "time_per_point_s": t, "time_min_s": t, "time_max_s": t, "pareto": False,
                          "duplicate_of": None} for run, err, macs, t in rows])


def test_mark_front_marks_the_table_and_keeps_one_of_each_duplicate():
    table = _table()
    part = mark_front(table, "problem_b_s", list(table.index), time_rtol=0.0)
    assert list(table["pareto"]) == [True, True, False, True]
    assert list(table["duplicate_of"]) == [None, None, None, "fast"]
    assert [table.at[i, "run_id"] for i in part.unique] == ["accurate", "fast"]
    assert part.safe == "problem_b_s" and part.spec.name == "problem_b_s" and part.front.cost_basis == "time"


def test_write_summary_records_the_request_and_the_settings(tmp_path):
    settings = post_settings("smoke")
    request = PostRequest(experiment="e", experiment_id="1", tracking_uri="sqlite:///x.db", target=tmp_path / "r",
                          device="cpu", backend="eager", precision="fp32", settings=settings,
                          bench_n=settings.bench_n("cpu"), time_rtol=0.05, register=False, quiet=True)
    result = PostStageResult(experiment="e", out_dir=request.target, post_run_id="run", mode="pareto")
    phases = _Phases()
    phases.add("compile", 1.5)
    write_summary(request, tmp_path, result, n_trials=3, phases=phases, started=0.0)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["settings"]["name"] == "smoke" and summary["bench_n"] == settings.bench_n_cpu
    assert summary["backend_requested"] == "eager" and summary["n_trials"] == 3
    assert summary["phase_seconds"] == {"compile": 1.5} and summary["post_run_id"] == "run"


def test_reproduce_request_resolves_defaults_and_refuses_bad_input_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    request = reproduce_request("Table 14", budget="small", tracking_uri=f"sqlite:///{tmp_path / 'm.db'}")
    assert request.plan.table == 14 and request.n_fresh == FRESH_ICS["small"]
    assert str(request.out) == "runs/reproduce/table14-small" and request.experiment is None
    with pytest.raises(ValueError, match="unknown budget 'huge'"):
        reproduce_request(14, budget="huge")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's")
    with pytest.raises(ForeignOutputFolderError, match="not empty"):
        reproduce_request(14, out=tmp_path / "mine")


def test_compare_rows_gives_every_thesis_row_when_nothing_was_measured():
    plan = get_plan(7)  # the window analysis
    rows, extra, tests = compare_rows(plan, TABLES[7], pd.DataFrame())
    assert [r["window"] for r in rows] == [r["window"] for r in TABLES[7].rows]
    assert all(r["our_mean"] is None for r in rows) and extra == "" and tests is None
