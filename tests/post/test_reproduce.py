"""``python -m fhn_automl.reproduce``: the thesis' rows beside ours, our errors against DOP853.

The fast tests train four tiny Problem A models with the learning layer (no Ray), log them in the
search layer's MLflow layout and let the command read that experiment (``--experiment``). The slow
test runs ``reproduce 14 --budget smoke`` end to end through the search (Ray, local MLflow).
"""

from __future__ import annotations

import json
import math
import re

import pytest

from fhn_automl.reproduce import PLANS, UnknownTableError, get_plan, main

LAYERS = ("silu-32,silu-16", "silu-16,silu-16")


def _log_trial(client, experiment_id: str, parent_id: str, name: str, spec: dict, result: dict) -> None:
    """One finished child run as the search's tracker writes it (params, final metrics, model/)."""
    from mlflow.entities import Metric, Param

    from fhn_automl.search.tracking import trial_params

    params = trial_params(spec, {"depth": len(spec["layers"].split(","))})
    run = client.create_run(experiment_id, run_name=name, tags={
        "fhn_automl.role": "trial", "fhn_automl.trial_name": name, "mlflow.parentRunId": parent_id})
    # like the tracker: every numeric figure of the last report, and again as final_<name>
    metrics = {k: float(v) for k, v in result.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    metrics.update({f"final_{k}": v for k, v in list(metrics.items())})
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()],
                     metrics=[Metric(k, v, 0, int(spec["steps"])) for k, v in metrics.items()])
    client.log_artifacts(run.info.run_id, result["model_dir"], "model")
    client.set_tag(run.info.run_id, "fhn_automl.trial_status", "finished")
    client.set_terminated(run.info.run_id, "FINISHED")


@pytest.fixture(scope="module")
def problem_a_experiment(tmp_path_factory) -> dict:
    """DDNN and PINN on the scarce set for two architectures (500 fast-recipe steps each: numbers, not accuracy), plus one
    complete-set DDNN that Table 14 must leave out."""
    from mlflow.tracking import MlflowClient

    from fhn_automl.learning import train

    root = tmp_path_factory.mktemp("reproduce_store")
    (root / "mlruns").mkdir()
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    name = "tiny_problem_a-smoke"
    experiment_id = client.create_experiment(name, artifact_location=(root / "mlruns" / "artifacts").as_uri())
    parent = client.create_run(experiment_id, run_name=name, tags={"fhn_automl.role": "search"})
    trials = []
    for layers in LAYERS:
        for kind, split in (("ddnn", "scarce"), ("pinn", "scarce")) + ((("ddnn", "complete"),) if layers == LAYERS[0] else ()):
            spec = {"problem": "problem_a", "kind": kind, "layers": layers, "batch_size": 10, "extra_region": None,
                    "window": None, "seed": 0, "steps": 500, "val_every": 250, "recipe": "fast", "study": "main",
                    "n_trajectories": None, "options": {"train_split": split}}
            extra = {"physics_batch_size": 128, "ic_batch_size": 8} if kind == "pinn" else {}
            result = train({"problem": "problem_a", "kind": kind, "layers": layers, "recipe": "fast",
                            "train_split": split, "batch_size": 10, "steps": 500, "val_every": 250, "threads": 1,
                            "data_root": str(root / "data"), "out_dir": str(root / f"{kind}-{split}-{layers}"),
                            "write_torchscript": False, **extra})
            trial = f"{kind}-{split}-{layers}"
            _log_trial(client, experiment_id, parent.info.run_id, trial, spec, result)
            trials.append({"name": trial, "kind": kind, "split": split, "layers": layers, **result})
    client.set_terminated(parent.info.run_id, "FINISHED")
    return {"uri": uri, "experiment": name, "root": root, "trials": trials}


@pytest.fixture(scope="module")
def table14_report(problem_a_experiment) -> dict:
    out = problem_a_experiment["root"] / "report14"
    code = main(["14", "--experiment", problem_a_experiment["experiment"], "--tracking-uri",
                 problem_a_experiment["uri"], "--out", str(out), "--quiet"])
    assert code == 0
    return {"out": out, "text": (out / "report.md").read_text(),
            "summary": json.loads((out / "reproduction.json").read_text())}


def test_unknown_table_is_a_named_error_with_exit_2(capsys):
    with pytest.raises(UnknownTableError, match="4, 7, 8, 9, 10, 14"):
        get_plan("3")
    assert get_plan("Table 14").table == 14
    assert main(["11"]) == 2
    err = capsys.readouterr().err
    assert "unknown table '11'" in err and "4, 7, 8, 9, 10, 14" in err and "Traceback" not in err


def test_every_plan_names_a_study_of_its_search_file_and_thesis_architectures():
    from fhn_automl.post.thesis_tables import TABLES
    from fhn_automl.reproduce import restricted_space

    for plan in PLANS.values():
        space, budget = restricted_space(plan, "smoke")
        trials = space.trials(budget)
        assert trials and {t.layers for t in trials} == set(plan.layers["smoke"])
        assert all(t.steps == budget.steps for t in trials)
        thesis_layers = {r.get("layers") for r in TABLES[plan.table].rows}
        if plan.analysis != "window":  # Table 7 gives statistics, not architectures
            assert set(plan.layers["smoke"]) <= thesis_layers, plan.table


def test_table14_report_has_thesis_rows_beside_our_measured_rows(table14_report, problem_a_experiment):
    text, summary = table14_report["text"], table14_report["summary"]
    assert summary["n_models"] == 4  # the complete-set model is not part of Table 14
    rows = {(r["layers"], r["pinn"]): r for r in summary["rows"]}
    assert len(rows) == 30  # every row of the thesis' table
    for layers in LAYERS:
        for pinn in (True, False):
            row = rows[(layers, pinn)]
            assert row["our_mean_err"] > 0 and row["our_max_err"] >= row["our_mean_err"]
    assert rows[("silu-32,silu-32", True)]["our_mean_err"] is None  # not trained
    # the thesis' numbers, as printed, and ours, as numbers, on the same markdown line
    line = next(l for l in text.splitlines() if l.startswith("| silu-32,silu-16 | True"))
    assert "1.31e-04" in line and "2.06e-03" in line
    ours = re.findall(r"\| (\d\.\d+e-\d\d|0\.\d+) ", line.split("2.06e-03", 1)[1])
    assert len(ours) >= 3, line  # our mean, our max, the recorded validation error
    assert "DOP853" in text and "no subset" in text
    assert "training end" in line  # model/ holds the network at training end, and the report says so
    assert "thesis t" in text and "7.42" in text
    # a read experiment is titled by its name and states its trials' own budget, not the --budget preset's
    assert text.startswith(f"# Thesis Table 14 reproduced (experiment {problem_a_experiment['experiment']})")
    assert "**Budget.** Per model, as the read experiment's trials recorded it: 500 steps x batch 10 (5e+03 samples)" in text
    assert "smoke budget" not in text
    assert "one fixed initial state: there is no domain variant" in text and "U0 in [-0.1, 0.81]" not in text
    assert (table14_report["out"] / "reproduction.png").stat().st_size > 1000


def test_our_dop853_error_agrees_with_the_recorded_validation_error(table14_report, problem_a_experiment):
    """Problem A's validation set is the same trajectory (Euler dt 0.01, off by ~1e-3 from DOP853), so the
    independent measure of the model at training end must land near the trainer's own final whole-set
    figure; a wrong time axis, input order or model file would not."""
    rows = {(r["layers"], r["pinn"]): r for r in table14_report["summary"]["rows"]}
    for trial in problem_a_experiment["trials"]:
        if trial["split"] != "scarce":
            continue
        row = rows[(trial["layers"], trial["kind"] == "pinn")]
        recorded = trial["final_full_val_mean_err"]
        assert row["final_full_val_mean_err"] == pytest.approx(recorded)
        # the recorded figure is eq. 3.3 (sum); the table's comparison column is the thesis code's measure
        assert 0.7 < row["our_sum_mean_err"] / recorded < 1.4, (trial["name"], row["our_sum_mean_err"], recorded)
        assert row["our_mean_err"] == pytest.approx(row["our_sum_mean_err"] / 2)  # two outputs: half the sum


def test_report_is_logged_to_mlflow_as_a_reproduce_run(table14_report, problem_a_experiment):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=problem_a_experiment["uri"])
    experiment = client.get_experiment_by_name(problem_a_experiment["experiment"])
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`fhn_automl.role` = 'reproduce'")
    assert len(runs) >= 1
    names = {a.path for a in client.list_artifacts(runs[0].info.run_id, "reproduce")}
    assert {"reproduce/report.md", "reproduce/reproduction.png"} <= names
    assert runs[0].data.metrics["best_mean_err_vs_dop853"] > 0


def test_a_foreign_output_folder_is_refused_before_any_work(problem_a_experiment, tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    code = main(["14", "--experiment", problem_a_experiment["experiment"], "--tracking-uri",
                 problem_a_experiment["uri"], "--out", str(foreign), "--quiet"])
    assert code == 2 and "not written by fhn_automl" in capsys.readouterr().err
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


@pytest.mark.slow
def test_reproduce_14_smoke_end_to_end_through_the_search(tmp_path, monkeypatch):
    """The real thing at the smoke budget: Ray, the search, MLflow, DOP853, the report (~1-2 min on 2 CPUs)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    try:
        code = main(["14", "--budget", "smoke", "--executor", "function", "--quiet"])
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    assert code == 0
    out = tmp_path / "runs" / "reproduce" / "table14-smoke"
    summary = json.loads((out / "reproduction.json").read_text())
    assert summary["mode"] == "trained now" and summary["n_models"] == 2
    measured = [r for r in summary["rows"] if r["our_mean_err"] is not None]
    assert {r["pinn"] for r in measured} == {True, False}
    assert all(0 < r["our_mean_err"] < 1 for r in measured)
    text = (out / "report.md").read_text()
    assert "| silu-32,silu-16 | True | 1.31e-04 | 2.06e-03 |" in text
    # a second call reads the experiment instead of training again
    assert main(["14", "--budget", "smoke", "--quiet"]) == 0
    again = json.loads((out / "reproduction.json").read_text())
    assert again["mode"].startswith("read") and again["n_models"] == 2


@pytest.mark.parametrize("table, problems", [(10, ("problem_c_code",)), (8, ("problem_b_c_small_code",)),
                                             (7, ("problem_b_c_code", "problem_b_c_small_code")),
                                             (9, ("problem_b_c_iter_code",)), (14, ("problem_a",))])
def test_each_table_trains_on_the_variant_that_produced_it(table, problems):
    from fhn_automl.reproduce import get_plan, restricted_space

    space, _ = restricted_space(get_plan(table), "smoke")
    assert space.studies[0].axes["problem"] == problems


def test_an_unknown_problem_variant_in_a_search_file_is_named(tmp_path):
    from fhn_automl.search.space import SearchSpaceError, load_search_space

    path = tmp_path / "s.yaml"
    path.write_text("problem: problem_c_codex\nkind: ddnn\nlayers:\n  choices: [silu-8]\n  depths: [1]\n")
    with pytest.raises(SearchSpaceError, match=r"problem.*problem_c_codex"):
        load_search_space(path)
