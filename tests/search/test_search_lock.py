"""A second search of the same experiment is refused while the first runs (issue 8, item 8)."""

from __future__ import annotations

import pytest

from fhn_automl.search.lock import SearchLockedError, experiment_lock


def test_second_search_is_refused_and_leaves_the_first_ones_state(make_search_file, tmp_path, monkeypatch,
                                                                  capsys):
    from fhn_automl.pipeline import main

    monkeypatch.chdir(tmp_path)
    search_file = make_search_file(tmp_path, ["silu-8"])
    live_state = tmp_path / "ray" / "tiny_b_s-paper"
    live_state.mkdir(parents=True)
    (live_state / "experiment_state.json").write_text("{}")  # the running search's Tune state
    argv = [str(search_file), "--budget", "paper", "--storage", str(tmp_path / "ray"), "--no-post",
            "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    with experiment_lock(str(live_state)):  # what the first search holds for its whole run
        assert main(argv) == 2
        assert "another search of this experiment is running" in capsys.readouterr().err
        with pytest.raises(SearchLockedError):
            with experiment_lock(str(live_state)):
                pass
    assert (live_state / "experiment_state.json").read_text() == "{}"
    assert not (tmp_path / "data").exists()  # refused before any work
    with experiment_lock(str(live_state)):  # released when the holder is done
        pass
