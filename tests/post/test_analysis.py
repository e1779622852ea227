"""ANOVA on a synthetic table recovers a planted effect; notable models; the sweep report."""

import numpy as np
import pandas as pd

from fhn_automl.post.analysis import ERROR_FORMULA, TIME_FORMULA, anova, notable_models


def synthetic_trials(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    shape_effect = {"rectangle": 0.0, "funnel": 2e-3, "bowtie": -1e-3}  # planted
    for shape, effect in shape_effect.items():
        for neurons in (16, 32, 48, 64, 96, 128):
            for repeat in range(4):
                rows.append({"shape_class": shape, "neurons": neurons, "depth": 1 + repeat % 3,
                             "mean_err": 1e-2 - 4e-5 * neurons + effect + rng.normal(0, 2e-4),
                             "run_id": f"{shape}-{neurons}-{repeat}", "layers": f"x-{neurons}-{repeat}"})
    return pd.DataFrame(rows)


def test_anova_recovers_the_planted_shape_and_neuron_effects():
    table, reason = anova(synthetic_trials(), ERROR_FORMULA)
    assert reason == ""
    assert table.loc["C(shape_class)", "PR(>F)"] < 1e-10
    assert table.loc["neurons", "PR(>F)"] < 1e-10
    assert table.loc["C(shape_class):neurons", "PR(>F)"] > 1e-3  # no interaction was planted
    assert table.attrs["coefficients"]["neurons"] < 0


def test_time_anova_sees_neurons_not_depth_when_only_neurons_matter():
    frame = synthetic_trials()
    rng = np.random.default_rng(1)
    frame["time_per_point_s"] = 1e-9 * frame["neurons"] + rng.normal(0, 1e-9, len(frame))
    table, _ = anova(frame, TIME_FORMULA)
    assert table.loc["neurons", "F"] > 100 * table.loc["C(depth)", "F"]


def test_anova_declines_with_a_reason_when_a_factor_has_one_level():
    frame = synthetic_trials()
    table, reason = anova(frame[frame["shape_class"] == "rectangle"], ERROR_FORMULA)
    assert table is None and "one level" in reason


def test_notable_models_pick_smallest_under_threshold_and_best_under_budget():
    frame = pd.DataFrame([
        {"layers": "a", "mean_err": 5e-3, "neurons": 16, "shape_class": "rectangle", "depth": 2, "run_id": "1"},
        {"layers": "b", "mean_err": 8e-4, "neurons": 48, "shape_class": "funnel", "depth": 3, "run_id": "2"},
        {"layers": "c", "mean_err": 5e-4, "neurons": 48, "shape_class": "bowtie", "depth": 3, "run_id": "3"},
        {"layers": "d", "mean_err": 4e-4, "neurons": 96, "shape_class": "rectangle", "depth": 3, "run_id": "4"},
    ])
    notes = dict(zip(notable_models(frame)["note"], notable_models(frame)["layers"]))
    assert notes["smallest model < 0.01"] == "a"
    assert notes["smallest model < 0.001"] == "c"  # same size as b, lower error wins the tie
    assert notes["best model <= 64 neurons"] == "c"
    assert notes["best model"] == "d" and notes["best two-layer"] == "a"


def test_small_inference_sweep_writes_tables_and_figures(tmp_path):
    from fhn_automl.post.sweep import run_inference_sweep, sweep_architectures, write_sweep_report

    layers = sweep_architectures([8, 16], [1, 2, 3])
    assert layers[0] == "silu-8" and "silu-16,silu-16,silu-16" in layers
    assert len(sweep_architectures([8, 16], [1, 2], mode="all")) == 6
    sweep = run_inference_sweep(layers, backends=("eager",), n_points=2_048, batch_sizes=(1_024,), repeats=1)
    assert len(sweep) == 6 and (sweep["time_per_point_s"] > 0).all() and (sweep["speedup"] == 1.0).all()
    files = write_sweep_report(sweep, tmp_path, euler_workload_time_s=1.0)
    assert all(path.exists() for path in files.values())
    assert "Table 12" in files["markdown"].read_text()
