"""Nothing planted in the Tune folder runs (issue 21 item 2).

The attacks: a payload in the cloudpickle blob of ``experiment_state-*.json`` ran on
``--sync-tracking``; one in ``tuner.pkl`` ran on ``--resume``. The replay now reads plain JSON only;
the pickles Tune must restore carry an HMAC recorded as they were written, checked before restoring.
Each payload here would create a marker file when unpickled.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest


class _Payload:
    """Unpickling it calls ``os.system`` (what a planted file would do), here only to touch a marker."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _planted_state(root: Path, marker: Path) -> None:
    trial = {"relative_logdir": "trial_a_00000", "status": "TERMINATED", "trainable_name": "x"}
    document = {"trial_data": [[json.dumps(trial), "{}"]],
                "runner_data": {"_type": "CLOUDPICKLE_FALLBACK", "value": pickle.dumps(_Payload(marker)).hex()},
                "stats": {}}
    root.mkdir(parents=True, exist_ok=True)
    (root / "experiment_state-2026-01-01_00-00-00.json").write_text(json.dumps(document))


def test_the_replay_reads_trial_statuses_without_unpickling(tmp_path):
    from fhn_automl.search.replay import _tune_trial_statuses

    marker = tmp_path / "ran"
    _planted_state(tmp_path / "tune", marker)
    assert _tune_trial_statuses(tmp_path / "tune") == {"trial_a_00000": "TERMINATED"}
    assert not marker.exists()


def test_resume_refuses_a_planted_tuner_pkl_before_anything_runs(tmp_path, monkeypatch):
    from fhn_automl.search.tune_state import UntrustedTuneStateError, check_before_restore, sign_files

    monkeypatch.setenv("FHN_AUTOML_TUNE_STATE_KEY", os.urandom(32).hex())
    tune = tmp_path / "ray" / "exp"
    tune.mkdir(parents=True)
    (tune / "tuner.pkl").write_bytes(pickle.dumps({"fine": 1}))
    (tune / "experiment_state-1.json").write_text("{}")
    sign_files(tune, [tune / "tuner.pkl", tune / "experiment_state-1.json"])
    check_before_restore(tune)  # what the driver wrote passes
    marker = tmp_path / "ran"
    (tune / "tuner.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(UntrustedTuneStateError, match=r"tuner\.pkl was not written by a search of yours"):
        check_before_restore(tune)
    (tune / "tuner.pkl").write_bytes(pickle.dumps({"fine": 1}))
    _planted_state(tune, marker)  # a second state file, newer by name: what Tune would restore
    (tune / "trial_a").mkdir()
    with pytest.raises(UntrustedTuneStateError, match="experiment_state-2026"):
        check_before_restore(tune)
    (tune / "experiment_state-2026-01-01_00-00-00.json").unlink()
    (tune / "trial_a" / "error.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(UntrustedTuneStateError, match="error.pkl"):
        check_before_restore(tune)
    other_key = os.urandom(32).hex()  # records made with someone else's key do not count
    (tune / "trial_a" / "error.pkl").unlink()
    monkeypatch.setenv("FHN_AUTOML_TUNE_STATE_KEY", other_key)
    with pytest.raises(UntrustedTuneStateError):
        check_before_restore(tune)
    assert not marker.exists()


def test_the_search_cli_refuses_resume_of_a_planted_folder_exit_2(make_search_file, tmp_path, monkeypatch, capsys):
    """Through the command, before Ray starts: the planted tuner.pkl is never unpickled."""
    from fhn_automl.pipeline import main
    from fhn_automl.search.tracking import experiment_name

    monkeypatch.setenv("FHN_AUTOML_TUNE_STATE_KEY", os.urandom(32).hex())
    search = make_search_file(tmp_path, ["silu-8"])
    storage = tmp_path / "ray"
    tune = storage / experiment_name(search.stem, "smoke")
    tune.mkdir(parents=True)
    marker = tmp_path / "ran"
    (tune / "tuner.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    code = main([str(search), "--budget", "smoke", "--resume", "--storage", str(storage), "--no-post",
                 "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    assert code == 2 and "tuner.pkl was not written by a search of yours" in capsys.readouterr().err
    assert not marker.exists()
