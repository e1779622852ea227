"""A search none of whose trials finished is not a success (issue 21 item 4): exit 4, a trial's error
quoted, no post-stage. Ray is replaced by a summary as the runner would return it (the statuses are
what the monitor records from Tune's callbacks)."""

from __future__ import annotations

import pytest

from fhn_automl.search.options import SearchSummary


def _summary(statuses: dict[str, str], errors: dict[str, str]) -> SearchSummary:
    return SearchSummary(experiment="problem_b_s-smoke", tracking_uri="sqlite:///x.db", parent_run_id="p",
                         n_trials=len(statuses), statuses=statuses, best_trial=None, best_value=None,
                         wall_seconds=1.0, interrupted=False, tune_path="/tmp/ray/problem_b_s-smoke",
                         timings={}, trial_errors=errors)


@pytest.mark.parametrize("statuses, code", [
    ({"t0": "error", "t1": "diverged"}, 4),
    ({"t0": "error", "t1": "finished"}, 0),
])
def test_no_finished_trial_exits_4_and_names_an_error(monkeypatch, capsys, statuses, code):
    import fhn_automl.pipeline as pipeline
    import fhn_automl.search.runner as runner

    errors = {"t0": "ValueError: batch_size must be at most 16,777,216"}
    monkeypatch.setattr(runner, "run_search", lambda options: _summary(statuses, errors))
    post_calls = []
    monkeypatch.setattr(pipeline, "run_post_stage", lambda *a, **k: post_calls.append(a) or 0)
    assert pipeline.main(["problem_b_s", "--budget", "smoke"]) == code
    err = capsys.readouterr().err
    if code == 4:
        assert "no trial of problem_b_s-smoke finished (1 error, 1 diverged of 2)" in err
        assert "t0: ValueError: batch_size must be at most" in err
        assert post_calls == []
    else:
        assert post_calls and "error" not in err
