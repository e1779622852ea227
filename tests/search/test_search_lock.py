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


def test_a_second_storage_for_one_experiment_is_refused_before_anything_is_written(tmp_path, tracking_uri, make_search_file):
    """Two searches with different --storage into one experiment would be mixed by its post-stage (issue 21
    item 9): the second is refused by name, with nothing written."""
    from mlflow.tracking import MlflowClient

    from fhn_automl.search.options import SearchOptions
    from fhn_automl.search.runner import run_search
    from fhn_automl.search.space import load_search_space
    from fhn_automl.search.tracking import ExperimentStorageMismatchError, check_experiment_storage
    from fhn_automl.search.tracking_tags import ROLE_TAG, SEARCH_ROLE, STORAGE_TAG

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_id = client.create_experiment("tiny_b_s-smoke")
    first = str((tmp_path / "first").resolve())
    client.create_run(experiment_id, tags={ROLE_TAG: SEARCH_ROLE, STORAGE_TAG: first})
    client.create_run(experiment_id, tags={ROLE_TAG: SEARCH_ROLE})  # an older search: no storage tag, not counted
    check_experiment_storage(tracking_uri, "tiny_b_s-smoke", first)  # the same storage: fine
    check_experiment_storage(tracking_uri, "another-smoke", str(tmp_path / "x"))  # no such experiment: fine
    space = load_search_space(make_search_file(tmp_path, ["silu-8"]))
    options = SearchOptions(space=space, budget=space.budget("smoke"), tracking_uri=tracking_uri,
                            storage=str(tmp_path / "second"), data_root=str(tmp_path / "data"), quiet=True)
    with pytest.raises(ExperimentStorageMismatchError, match=r"tiny_b_s-smoke.*first.*second"):
        run_search(options)
    assert not (tmp_path / "data").exists() and not (tmp_path / "second" / "tiny_b_s-smoke").exists()
