"""``resources.executor: packed`` survives a crashed pack process and a stopped driver (issue 10:
"``--resume`` / node loss work per pack"): the pack goes on from its last validation checkpoint and every
member still ends with exactly one finished MLflow child run and its model."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fhn_automl.search.space import load_search_space
from fhn_automl.search.tracking import MODEL_ARTIFACT_PATH, ROLE_TAG, STATUS_TAG, TRIAL_NAME_TAG, iter_child_runs

# four depth-2 trials -> two packs of two (pack_size 2), widths differ inside a pack (padding)
SEQUENCES = ["silu-8,silu-8", "tanh-8,silu-8", "silu-16,tanh-16", "tanh-16,tanh-16"]
PACKED = "{workers: 1, cpus_per_worker: 1, executor: packed, pack_size: 2}"


def _options(path: Path, tmp_path: Path, tracking_uri: str, data_root: Path, **kwargs: Any):
    from fhn_automl.search.options import SearchOptions

    space = load_search_space(path)
    return SearchOptions(space=space, budget=space.budget("paper"), tracking_uri=tracking_uri,
                         storage=str(tmp_path / "ray"), data_root=str(data_root), quiet=True, **kwargs)


def _crash_once_after_first_checkpoint(marker: str, log: str) -> Callable[[dict[str, Any]], None]:
    """The real ``packed_trial``, except that the first pack to report a validation checkpoint
    SIGKILLs its own process right after Tune took that checkpoint (a lost node / crashed worker as Tune
    sees it: the actor is gone without a word). Every report is logged to ``log`` (pid, step, each
    member's ``resumed``) so the test can see where the restarted process began.

    A closure, so Ray pickles it by value to the trial process (the tests folder is not importable
    there); no hook in production code is needed because ``packed_trial`` looks ``tune.report`` up
    at call time."""

    def crashing_pack_trial(config: dict[str, Any]) -> None:
        import json
        import os
        import signal

        import ray.tune

        from fhn_automl.search import packed_trial as module

        real_report = ray.tune.report

        def report(metrics: dict[str, Any], *, checkpoint: Any = None) -> None:
            real_report(metrics, checkpoint=checkpoint)  # returns once the driver has taken the result
            with open(log, "a") as out:
                out.write(json.dumps({"pack": config["pack"]["name"], "pid": os.getpid(),
                                      "step": metrics["step"], "final": int(bool(metrics.get("final"))),
                                      "resumed": {name: member.get("resumed") for name, member in
                                                  metrics["members"].items()}}) + "\n")
            if checkpoint is None or metrics.get("final"):
                return
            try:  # O_EXCL: of two packs reporting at once, only one crashes, once
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return
            os.write(fd, config["pack"]["name"].encode())
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)

        ray.tune.report = report
        try:
            module.packed_trial(config)
        finally:  # Tune may reuse this process for another trial
            ray.tune.report = real_report

    return crashing_pack_trial


def _model_files(client: Any, run_id: str) -> set[str]:
    return {a.path for a in client.list_artifacts(run_id, MODEL_ARTIFACT_PATH)}


@pytest.mark.slow
def test_crashed_pack_restarts_from_its_checkpoint(local_ray, tmp_path, tracking_uri, data_root, make_search_file,
                                                    monkeypatch):
    from mlflow.tracking import MlflowClient

    from fhn_automl.search.runner import run_search

    marker, log = tmp_path / "crashed", tmp_path / "reports.jsonl"
    monkeypatch.setattr("fhn_automl.search.packed_trial.packed_trial",
                        _crash_once_after_first_checkpoint(str(marker), str(log)))
    path = make_search_file(tmp_path, SEQUENCES, name="pack_crash", steps=300, val_every=100, resources=PACKED)
    summary = run_search(_options(path, tmp_path, tracking_uri, data_root, max_failures=1))

    assert marker.exists(), "no pack process was crashed"
    crashed = marker.read_text()
    assert not summary.interrupted
    assert sorted(summary.statuses.values()) == ["finished"] * 4

    reports = [json.loads(line) for line in log.read_text().splitlines()]
    mine = [r for r in reports if r["pack"] == crashed]
    pids = list(dict.fromkeys(r["pid"] for r in mine))
    assert len(pids) == 2, mine  # the process that died after step 100 and the one Tune restarted
    before = [r for r in mine if r["pid"] == pids[0]]
    after = [r for r in mine if r["pid"] == pids[1]]
    assert [r["step"] for r in before] == [100]
    # restored from the step-100 checkpoint: no step trained twice, and the members know they resumed
    assert [r["step"] for r in after] == [200, 300, 300]  # two validations, then the final report
    assert all(set(r["resumed"].values()) == {1} for r in after if not r["final"])
    others = [r for r in reports if r["pack"] != crashed]
    assert [r["step"] for r in others] == [100, 200, 300, 300]
    assert all(set(r["resumed"].values()) == {0} for r in others if not r["final"])

    client = MlflowClient(tracking_uri)
    children = {run.data.tags[TRIAL_NAME_TAG]: run for run in iter_child_runs(tracking_uri, "pack_crash-paper")}
    assert sorted(run.data.params["layers"] for run in children.values()) == sorted(SEQUENCES)
    crashed_members = set(after[0]["resumed"])
    assert len(crashed_members) == 2 and crashed_members <= set(children)
    for name, run in children.items():
        assert run.data.tags[STATUS_TAG] == "finished", name
        assert {"model/spec.json", "model/weights.pt"} <= _model_files(client, run.info.run_id), name
        history = client.get_metric_history(run.info.run_id, "val_mean_err")
        assert [m.step for m in history] == [100, 200, 300], name
        # the driver saw the crashed pack's members report from two processes, the others from one
        assert run.data.tags["fhn_automl.worker_restarts"] == ("1" if name in crashed_members else "0"), name


@pytest.mark.slow
def test_interrupted_packed_search_resumes_without_duplicates(local_ray, tmp_path, tracking_uri, data_root,
                                                              make_search_file):
    """The driver is stopped (SIGINT) once the first pack has finished; ``--resume`` completes the rest:
    one finished child run per member, each with its model, the first pack's runs untouched."""
    from mlflow.tracking import MlflowClient

    from fhn_automl.search.runner import run_search

    path = make_search_file(tmp_path, SEQUENCES, name="pack_resume", resources=PACKED)
    command = [sys.executable, "-m", "fhn_automl.search", str(path), "--budget", "paper",
               "--address", local_ray.get_runtime_context().gcs_address,
               "--storage", str(tmp_path / "ray"), "--tracking-uri", tracking_uri,
               "--data-root", str(data_root), "--max-concurrent", "1", "--no-post", "--quiet"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 150
    first_pack: list[Any] = []
    while time.monotonic() < deadline and process.poll() is None:
        first_pack = [r for r in iter_child_runs(tracking_uri, "pack_resume-paper") if STATUS_TAG in r.data.tags]
        if first_pack:
            break
        time.sleep(0.25)
    assert first_pack, process.communicate(timeout=30)[0][-3000:]
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=90)[0]
    assert process.returncode != 0, output[-3000:]
    done_before = {r.data.tags[TRIAL_NAME_TAG]: r for r in iter_child_runs(tracking_uri, "pack_resume-paper")
                   if STATUS_TAG in r.data.tags}
    assert len(done_before) < 4, sorted(done_before)  # the second pack had not finished

    summary = run_search(_options(path, tmp_path, tracking_uri, data_root, resume=True))
    assert not summary.interrupted
    assert sorted(summary.statuses.values()) == ["finished"] * 4

    client = MlflowClient(tracking_uri)
    children = list(iter_child_runs(tracking_uri, "pack_resume-paper"))
    names = [r.data.tags[TRIAL_NAME_TAG] for r in children]
    assert len(names) == 4 and len(set(names)) == 4
    assert sorted(r.data.params["layers"] for r in children) == sorted(SEQUENCES)
    parents = client.search_runs([client.get_experiment_by_name("pack_resume-paper").experiment_id],
                                 f"tags.`{ROLE_TAG}` = 'search'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    for run in children:
        name = run.data.tags[TRIAL_NAME_TAG]
        assert run.data.tags[STATUS_TAG] == "finished", name
        assert {"model/spec.json", "model/weights.pt"} <= _model_files(client, run.info.run_id), name
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_mean_err")] == [200, 400, 600], name
        if name in done_before:  # finished before the interruption: not trained or closed again
            assert run.info.end_time == done_before[name].info.end_time, name
