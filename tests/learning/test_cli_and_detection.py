"""The training CLI end to end (small), and the high-error-region detection step."""

import json

import numpy as np
import pytest
import torch

from fhn_automl.learning import load_model, load_torchscript, train
from fhn_automl.learning.high_error_region import DetectionRule, detect_high_error_set, high_error_centres
from fhn_automl.learning.training_data import read_columns
from fhn_automl.physics.problems import get_problem
from fhn_automl.train import main
from tests.learning.conftest import tiny_config


def test_cli_trains_and_writes_model_and_metrics(b_s_data, tmp_path, capsys):
    code = main(["problem_b_s", "--layers", "silu-8,tanh-8", "--steps", "200", "--batch-size", "64",
                 "--data-dir", str(b_s_data), "--device", "cpu", "--out", str(tmp_path)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "step      200/200" in printed and "val mean" in printed
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["final"]["status"] == "finished"
    # as --help says: DIR/model is the model at the end of training, and the figure printed is its own
    assert metrics["final"]["model_selection"] == "final"
    summary = json.loads(printed[printed.rindex("{"):])
    assert summary["final_full_val_mean_err"] == metrics["final"]["final_full_val_mean_err"]
    for name in ("spec.json", "weights.pt", "model.ts"):
        assert (tmp_path / "model" / name).exists()
    x = torch.tensor([[3.0, 0.7, 0.01]])
    assert torch.allclose(load_torchscript(tmp_path / "model")(x), load_model(tmp_path / "model")(x))


def test_cli_rejects_bad_layers(tmp_path, capsys):
    assert main(["problem_b_s", "--layers", "silu-8,tahn-8", "--out", str(tmp_path)]) == 2
    assert "tahn-8" in capsys.readouterr().err


BAD_NUMBERS = [("--steps", "0"), ("--steps", "-5"), ("--steps", "abc"), ("--steps", "2.5"),
               ("--batch-size", "0"), ("--lr", "0"), ("--lr", "-0.001"), ("--lr", "nan"), ("--lr", "inf"),
               ("--val-every", "0"), ("--physics-weight", "-1"), ("--physics-weight", "nan"),
               ("--physics-batch-size", "0"), ("--ic-batch-size", "-2"), ("--threads", "0"),
               ("--seed", "-1"), ("--n-trajectories", "0"), ("--n-trajectories", "x")]


@pytest.mark.parametrize(("option", "value"), BAD_NUMBERS, ids=[f"{o} {v}" for o, v in BAD_NUMBERS])
def test_cli_bad_number_is_an_argparse_error_naming_the_option(option, value, tmp_path, capsys):
    # argparse exits 2 with the usage line before anything is built or written
    with pytest.raises(SystemExit) as exit_info:
        main(["problem_b_s", option, value, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and value in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_detection_builds_a_set_that_trains_as_extra_data(b_s_data, tmp_path):
    base = train(tiny_config("problem_b_s", b_s_data, tmp_path / "base", steps=100))
    model = load_model(base["model_dir"])
    problem = get_problem("problem_b_s")
    columns = read_columns(b_s_data, "train")
    centres, report = high_error_centres(model, problem, columns, DetectionRule("top_fraction", 0.05, max_centres=4))
    assert centres.shape == (4, 2) and report["centres"] == 4
    assert np.isin(centres[:, 0], columns["u0"]).all()  # real initial states of the split
    path, detection = detect_high_error_set(model, problem, b_s_data, tmp_path / "he.parquet",
                                            rule=DetectionRule("top_fraction", 0.05, max_centres=3),
                                            n_per_centre=2, device="cpu")
    assert detection["centres"] == 3 and detection["n_per_centre"] == 2
    result = train(tiny_config("problem_b_s", b_s_data, tmp_path / "with_extra", steps=100,
                               extra_region=f"data:{path}"))
    assert result["status"] == "finished" and "loss_extra_data" in result


def test_cli_detect_runs_the_detection_step_then_trains_with_the_set(b_s_data, tmp_path, capsys):
    code = main(["problem_b_s", "--layers", "silu-8,tanh-8", "--steps", "200", "--val-every", "100",
                 "--data-dir", str(b_s_data), "--device", "cpu", "--out", str(tmp_path),
                 "--extra-region", "detect", "--detect-rule", "top_fraction:0.1"])
    assert code == 0
    detection = json.loads((tmp_path / "high_error.json").read_text())
    assert detection["rule"] == "top 10% of points" and detection["centres"] >= 1
    assert (tmp_path / "high_error.parquet").is_file()
    assert "loss_extra_data" in json.loads((tmp_path / "metrics.json").read_text())["final"]
    assert main(["problem_b_s", "--out", str(tmp_path / "x"), "--extra-region", "detect",
                 "--detect-rule", "top_half"]) == 2
    assert "bad detection rule" in capsys.readouterr().err
