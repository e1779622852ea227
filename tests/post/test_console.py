"""Issue 17 item 8: the end of a search shows the front as a table and where to look."""

from fhn_automl.post.console import mlflow_ui_address, where_to_look


def test_the_closing_block_has_the_front_the_registered_name_the_report_and_the_mlflow_address(post_result,
                                                                                                tiny_experiment):
    from mlflow.tracking import MlflowClient

    uri = tiny_experiment["uri"]
    text = where_to_look(post_result, uri)
    front = post_result.fronts["problem_b_s"]
    assert f"Pareto front, problem_b_s: {len(front)} model(s)" in text
    table = text.split("\n")
    assert table[1].split()[:4] == ["#", "layers", "val", "mean"]
    for position, row in enumerate(front, start=1):
        [line] = [line for line in table if line.startswith(f"{position} ") and row["layers"] in line]
        assert f"{row['mean_err']:.3e}" in line and f"{row['time_per_point_s'] * 1e9:.1f}" in line
        assert str(row["macs"]) in line
    assert "models:/fhn_automl.problem_b_s@pareto" in text
    assert f"report:      {post_result.out_dir}" in text
    experiment_id = MlflowClient(tracking_uri=uri).get_experiment_by_name(tiny_experiment["experiment"]).experiment_id
    assert f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs?workflowType=machine_learning" in text
    assert f"ui --backend-store-uri {uri}" in text


def test_a_tracking_server_address_is_used_as_it_is():
    address, command = mlflow_ui_address("http://tracking.example:5000/", "7")
    assert address == "http://tracking.example:5000/#/experiments/7/runs?workflowType=machine_learning"
    assert command is None
