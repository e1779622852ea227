"""The post-stage's budget presets, and that the search hands its budget to the post-stage."""

import pytest

from fhn_automl.post.settings import BUDGET_NAMES, PRESETS, PostSettings, post_settings


def test_every_search_budget_has_a_post_preset_and_smoke_is_the_smallest():
    from fhn_automl.search.budgets import BUDGET_NAMES as SEARCH_BUDGETS

    assert set(SEARCH_BUDGETS) <= set(BUDGET_NAMES)
    smoke, small, paper = (post_settings(name) for name in ("smoke", "small", "paper"))
    assert smoke.name == "smoke" and smoke.threads == 1
    for field in ("tune_points", "bench_n_cpu", "n_ref", "max_bench_models"):
        assert getattr(smoke, field) <= getattr(small, field) <= getattr(paper, field), field
    assert paper.bench_n_gpu == 16_000_000  # the thesis' workload
    assert post_settings(None) == PRESETS["small"]
    with pytest.raises(ValueError, match="smoke, small, paper"):
        post_settings("huge")


def test_overrides_change_single_fields_and_none_keeps_the_preset():
    tuned = post_settings("smoke").replace(repeats=7, n_ref=None)
    assert isinstance(tuned, PostSettings) and tuned.repeats == 7 and tuned.n_ref == PRESETS["smoke"].n_ref


def test_the_search_passes_its_budget_to_the_post_stage(monkeypatch, capsys):
    from types import SimpleNamespace

    import fhn_automl.post
    from fhn_automl import pipeline

    calls = []

    def post_stage(*args, **kwargs):
        calls.append((args, kwargs))
        return SimpleNamespace(fronts={}, registered=[], out_dir="runs/post/problem_b_s-smoke", experiment_id="3")

    monkeypatch.setattr(fhn_automl.post, "run_post_stage", post_stage)
    assert pipeline.run_post_stage("problem_b_s-smoke", "sqlite:///x.db", "smoke") == 0
    (args, kwargs), = calls
    assert args == ("problem_b_s-smoke", "sqlite:///x.db") and post_settings(kwargs["budget"]) == PRESETS["smoke"]
    assert kwargs["out_dir"] is None  # not a Ray job: the stage's own default folder
    assert "report:      runs/post/problem_b_s-smoke" in capsys.readouterr().out  # and where to look


def test_the_post_cli_takes_a_budget():
    from fhn_automl.post.__main__ import build_parser

    args = build_parser().parse_args(["problem_b_s-smoke", "--budget", "smoke"])
    assert args.budget == "smoke" and args.repeats is None and args.bench_n is None


def test_the_stage_records_its_settings_phases_and_thread_count(post_result):
    import json

    summary = json.loads((post_result.out_dir / "summary.json").read_text())
    assert summary["settings"]["name"] == "small" and summary["settings"]["repeats"] == 1  # FAST_POST overrides
    assert {"compile", "tune batch size", "benchmark"} <= set(summary["phase_seconds"])
    benchmark = next(post_result.out_dir.glob("benchmark_*.md")).read_text()
    assert "torch threads 1" in benchmark and "time / point (s)" in benchmark


def test_budget_names_have_one_home():
    """The search's budgets are the post-stage's and reproduce's (issue 15 item 4): a preset per budget."""
    from fhn_automl.post.settings import BUDGET_NAMES, PRESETS
    from fhn_automl.reproduce import BUDGETS
    from fhn_automl.search.budgets import BUDGET_NAMES as SEARCH_BUDGETS, DEFAULT_BUDGETS

    assert BUDGET_NAMES is SEARCH_BUDGETS and BUDGETS is SEARCH_BUDGETS
    assert set(PRESETS) == set(DEFAULT_BUDGETS) == set(SEARCH_BUDGETS)
