"""Issue 17 item 2: the registered front does not flip with timing noise; smoke models never get @pareto."""

from pathlib import Path

from fhn_automl.post import run_post_stage

from .conftest import ARCHITECTURES, FAST_POST, log_trial


def test_the_stage_twice_on_the_same_trials_registers_the_same_front(tiny_experiment, tmp_path):
    from mlflow.tracking import MlflowClient

    uri = tiny_experiment["uri"]
    client = MlflowClient(tracking_uri=uri)
    name = "tiny_b_s_twice-smoke"
    experiment_id = client.create_experiment(name, artifact_location=(tmp_path / "artifacts").as_uri())
    # the parent run of a smoke-budget search, as the search layer tags it
    parent = client.create_run(experiment_id, tags={"fhn_automl.role": "search", "fhn_automl.budget": "smoke"})
    metrics = list(tiny_experiment["trials"].values())
    run_ids = set()
    for position, layers in enumerate(ARCHITECTURES):
        figures = {k: v for k, v in metrics[position].items() if k != "layers"}
        run_ids.add(log_trial(client, experiment_id, parent.info.run_id, f"trial_{position}", layers, "finished",
                              figures, Path(tiny_experiment["root"]) / f"train{position}" / "model"))
    # the interleaved front timing at the smoke preset's rounds (FAST_POST cuts only the tuning repeats)
    settings = {**FAST_POST, "front_rounds": 7}
    results = [run_post_stage(name, uri, tmp_path / f"report{i}", **settings) for i in range(2)]

    fronts = [[row["run_id"] for row in result.fronts["problem_b_s"]] for result in results]
    registered = [[(r["alias"], r["run_id"]) for r in result.registered] for result in results]
    assert fronts[0] == fronts[1], [[(r["layers"], r["time_min_s"], r["time_max_s"]) for r in result.fronts["problem_b_s"]]
                                    for result in results]
    assert registered[0] == registered[1] and registered[0]
    # a smoke search registers under the 'smoke' alias family, never the deployment alias 'pareto'
    assert [alias for alias, _ in registered[0]] == ["smoke"] + [f"smoke-{i}" for i in range(2, len(registered[0]) + 1)]
    model = client.get_registered_model("fhn_automl.problem_b_s")
    pareto_runs = {client.get_model_version(model.name, v).run_id for a, v in model.aliases.items()
                   if a == "pareto" or a.startswith("pareto-")}
    assert not pareto_runs & run_ids
    # no budget given: the stage ran at the search's own (smoke) preset, as the search's post-stage does
    import json

    summary = json.loads((results[0].out_dir / "summary.json").read_text())
    assert summary["settings"]["name"] == "smoke" and summary["settings"]["front_rounds"] == 7
    report = (results[0].out_dir / "pareto_problem_b_s.md").read_text()
    assert "7 interleaved rounds" in report and "spreads overlap" in report
