"""ANOVA on a synthetic table recovers a planted effect; notable models; the sweep report."""

import numpy as np
import pandas as pd
import pytest

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
    assert table.loc["neurons", "F"] > 100 * table.loc["depth", "F"]
    assert table.loc["depth", "df"] == 1  # layers as one numeric term, as in Tables 12-13


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


# ------------------------------------------------------------------- the thesis' other analyses


def _records(rows):
    from fhn_automl.post.runs import TrialRecord

    return [TrialRecord(run_id=f"r{i}", name=f"t{i}", problem=r.get("problem", "problem_b_s"), kind=r["kind"],
                        layers=r.get("layers", "silu-32,silu-32"), shape_class="rectangle", neurons=64, depth=2,
                        parameters=1, macs=1, mean_err=r["mean_err"], max_err=r["mean_err"] * 10,
                        params={"study": r.get("study", "batch_pinn"), "batch_size": str(r["bs"]),
                                "extra_region": r.get("extra_region", "none"), "seed": "0", "steps": "1000",
                                **({"option.train_split": r["split"]} if "split" in r else {})},
                        metrics={"final_step_time_ms": r.get("step_time_ms", 1.0)})
            for i, r in enumerate(rows)]


def batch_study(seed: int = 0) -> pd.DataFrame:
    """Eq. 4.1's 20 models with planted effects: PINN +6e-4 and DDNNa/PINNa +4e-4 error, error falling
    with batch size; iteration time: PINN +6.6 ms, extra region +5 ms, batch size nothing."""
    from fhn_automl.post.analysis import trials_frame

    rng = np.random.default_rng(seed)
    rows = []
    for kind in ("ddnn", "pinn"):
        for region in ("none", "unstable_equilibrium"):
            for bs in (32, 64, 128, 512, 1536):
                pin, iccs = kind == "pinn", region != "none"
                rows.append({"kind": kind, "extra_region": region, "bs": bs,
                             "mean_err": 2e-3 + 6e-4 * pin + 4e-4 * iccs - 2e-7 * bs + rng.normal(0, 5e-5),
                             "step_time_ms": 1.0 + 6.6 * pin + 5.0 * iccs + rng.normal(0, 0.3)})
    return trials_frame(_records(rows))


def test_trials_frame_derives_the_eq_4_1_factors_from_the_params():
    frame = batch_study()
    assert len(frame) == 20 and frame["pin"].sum() == 10 and frame["iccs"].sum() == 10
    assert sorted(frame["bs"].unique()) == [32, 64, 128, 512, 1536]
    assert (frame["step_time_ms"] > 0).all() and (frame["study"] == "batch_pinn").all()


def test_batch_study_anova_recovers_the_planted_effects_of_eq_4_1():
    from fhn_automl.post.analysis import batch_study_anova

    fitted = batch_study_anova(batch_study())
    error, reason = fitted["mean_err"]
    assert reason == ""
    assert error.loc["C(pin)", "PR(>F)"] < 1e-6 and error.loc["C(iccs)", "PR(>F)"] < 1e-6
    assert error.loc["bs", "PR(>F)"] < 1e-3
    coefficients = error.attrs["coefficients"]
    assert coefficients["C(pin)[T.True]"] == pytest.approx(6e-4, rel=0.25)
    assert coefficients["C(iccs)[T.True]"] == pytest.approx(4e-4, rel=0.25)
    assert coefficients["bs"] < 0
    time_table, _ = fitted["step_time_ms"]
    # Table 3's pattern: pin > iccs >> bs
    assert time_table.loc["C(pin)", "F"] > time_table.loc["C(iccs)", "F"] > 20 * max(time_table.loc["bs", "F"], 1)


def test_batch_study_anova_refuses_a_mix_of_architectures():
    from fhn_automl.post.analysis import batch_study_anova

    frame = batch_study()
    frame.loc[frame.index[:5], "layers"] = "tanh-64,tanh-64"
    table, reason = batch_study_anova(frame)["mean_err"]
    assert table is None and "2 architectures" in reason


def test_error_anova_is_fitted_per_study_and_kind_never_over_a_mix():
    from fhn_automl.post.analysis import error_anova_by_study

    shaped = synthetic_trials().assign(problem="problem_b_s", study="architecture", kind="ddnn")
    rng = np.random.default_rng(3)
    flat = synthetic_trials(seed=4).assign(problem="problem_b_s", study="batch_pinn_architectures", kind="pinn")
    flat["mean_err"] = 5e-3 + rng.normal(0, 2e-4, len(flat))  # no shape effect in this study
    results = {label: (table, reason) for label, table, reason in error_anova_by_study(pd.concat([shaped, flat]))}
    assert set(results) == {"problem_b_s / architecture / ddnn", "problem_b_s / batch_pinn_architectures / pinn"}
    assert results["problem_b_s / architecture / ddnn"][0].loc["C(shape_class)", "PR(>F)"] < 1e-10
    assert results["problem_b_s / batch_pinn_architectures / pinn"][0].loc["C(shape_class)", "PR(>F)"] > 1e-3


def test_size_split_sees_the_shape_effect_shrink_in_large_models():
    """Tables 5-6: shape matters below 120 neurons, much less from 120 up (planted)."""
    from fhn_automl.post.analysis import size_split_analysis

    rng = np.random.default_rng(5)
    rows = []
    for shape, effect in {"rectangle": 0.0, "funnel": 3e-3, "bowtie": -2e-3, "diamond": 1e-3}.items():
        for neurons in (16, 32, 48, 64, 96, 128, 160, 192, 256):
            for repeat in range(4):
                scale = 1.0 if neurons < 120 else 0.02
                rows.append({"shape_class": shape, "neurons": neurons, "run_id": f"{shape}{neurons}{repeat}",
                             "mean_err": 1e-2 - 2e-5 * neurons + scale * effect + rng.normal(0, 2e-4)})
    split = size_split_analysis(pd.DataFrame(rows))
    small, large = split["small"], split["large"]
    assert small["n"] == 4 * 5 * 4 and large["n"] == 4 * 4 * 4
    assert small["anova"].loc["C(shape_class)", "F"] > 20 * large["anova"].loc["C(shape_class)", "F"]
    assert small["between_class_ms"] > 50 * small["within_class_ms"]
    assert large["between_class_ms"] < 20 * large["within_class_ms"]


def test_t_tests_find_pinn_better_on_scarce_and_no_difference_on_complete():
    """Figures 17 and 21 in miniature: a planted gap on one set, none on the other."""
    from fhn_automl.post.analysis import pinn_ddnn_t_tests, trials_frame

    rng = np.random.default_rng(7)
    rows = []
    for i, layers in enumerate(["silu-16,silu-16", "silu-32,silu-16", "silu-16,silu-32", "silu-32,silu-32",
                                "silu-16,silu-16,tanh-8", "silu-32,silu-32,silu-32"]):
        rows.append({"kind": "ddnn", "split": "scarce", "layers": layers, "bs": 10, "mean_err": rng.uniform(1.5e-2, 3e-2)})
        rows.append({"kind": "pinn", "split": "scarce", "layers": layers, "bs": 10, "mean_err": rng.uniform(1e-4, 1e-3)})
        for kind in ("ddnn", "pinn"):
            rows.append({"kind": kind, "split": "complete", "layers": layers, "bs": 10,
                         "mean_err": rng.uniform(2e-4, 1e-3)})
    tests = pinn_ddnn_t_tests(trials_frame(_records(rows))).set_index("train_split")
    assert tests.loc["scarce", "t"] > 5 and tests.loc["scarce", "p"] < 1e-4
    assert tests.loc["scarce", "n_pairs"] == 6 and tests.loc["scarce", "paired_p"] < 1e-3
    assert abs(tests.loc["complete", "t"]) < 2.5 and tests.loc["complete", "p"] > 0.05


def test_window_summary_gives_table_7_statistics_per_window():
    from fhn_automl.post.analysis import window_summary

    large = [1.2e-2, 8e-3, 3e-2, 1.5e-2]
    small = [2e-3, 9e-4, 4e-3]
    frame = pd.DataFrame([{"problem": "problem_b_c", "layers": f"l{i}", "mean_err": e} for i, e in enumerate(large)]
                         + [{"problem": "problem_b_c_small", "layers": f"s{i}", "mean_err": e} for i, e in enumerate(small)])
    summary = window_summary(frame).set_index("window")
    assert list(summary.index) == [50.0, 5.0]
    assert summary.loc[50.0, "mean"] == pytest.approx(np.mean(large))
    assert summary.loc[50.0, "std"] == pytest.approx(np.std(large, ddof=1))
    assert summary.loc[5.0, "best"] == 9e-4 and summary.loc[5.0, "worst"] == 4e-3
    assert summary.loc[5.0, "best_layers"] == "s1" and summary.loc[50.0, "n"] == 4


def test_notable_tables_use_the_0_002_threshold_and_thesis_rules():
    from fhn_automl.post.analysis import pick_notable

    frame = pd.DataFrame([
        {"layers": "a", "mean_err": 1.9e-3, "neurons": 48, "shape_class": "rectangle", "depth": 3, "run_id": "1"},
        {"layers": "b", "mean_err": 2.5e-3, "neurons": 32, "shape_class": "funnel", "depth": 3, "run_id": "2"},
        {"layers": "c", "mean_err": 1.1e-3, "neurons": 64, "shape_class": "diamond", "depth": 3, "run_id": "3"},
    ])
    notes = dict(zip(notable_models(frame)["note"], notable_models(frame)["layers"]))
    assert notes["smallest model < 0.002"] == "a" and notes["smallest model < 0.005"] == "b"
    assert pick_notable(frame, "best_within", 32)["layers"] == "b"
    assert pick_notable(frame, "best_within", 64)["layers"] == "c"  # Table 8's '< 64' row has 64 neurons
    assert pick_notable(frame, "best_depth", 2) is None


def test_activation_effect_finds_a_planted_slow_activation():
    """Figure 42: per activation, the time relative to SiLU on the same widths."""
    from fhn_automl.post.analysis import activation_effect

    rng = np.random.default_rng(9)
    rows = []
    for activation, factor in {"silu": 1.0, "tanh": 1.0, "elu": 1.6}.items():
        for width in (8, 16, 32, 64):
            for depth in (1, 2, 3):
                layers = ",".join([f"{activation}-{width}"] * depth)
                rows.append({"layers": layers, "neurons": width * depth, "backend_label": "eager",
                             "time_per_point_s": factor * 1e-9 * width * depth * (1 + rng.normal(0, 0.02))})
    summary, table, reason = activation_effect(pd.DataFrame(rows))
    ratios = summary.set_index("activation")["median_ratio_to_reference"]
    assert ratios["silu"] == pytest.approx(1.0) and ratios["tanh"] == pytest.approx(1.0, abs=0.05)
    assert ratios["elu"] == pytest.approx(1.6, rel=0.05)
    assert reason == "" and table.loc["C(activation)", "PR(>F)"] < 1e-3


def test_thesis_tables_are_consistent_with_their_layer_notation():
    """Each transcribed row's neuron count follows from its layers; Table 14 pairs every architecture."""
    from fhn_automl.learning.architecture import count_neurons
    from fhn_automl.post.thesis_tables import TABLES

    for table in TABLES.values():
        for row in table.rows:
            if row.get("neurons") is not None:
                assert count_neurons(row["layers"]) == row["neurons"], (table.number, row)
    for number in (14, 15):
        kinds = {}
        for row in TABLES[number].rows:
            kinds.setdefault(row["layers"], set()).add(row["pinn"])
        assert all(v == {True, False} for v in kinds.values()), number
    assert len(TABLES[14].rows) == 30 and len(TABLES[15].rows) == 14


def test_sweep_report_fits_tables_12_13_on_one_activation_and_compares_activations(tmp_path):
    from fhn_automl.post.sweep import activation_sweep_architectures, run_inference_sweep, write_sweep_report

    layers = activation_sweep_architectures(["silu", "tanh"], [8, 16, 32], [1, 2])
    assert len(layers) == 12 and "tanh-16,tanh-16" in layers
    sweep = run_inference_sweep(layers, backends=("eager",), n_points=2_048, batch_sizes=(1_024,), repeats=1)
    files = write_sweep_report(sweep, tmp_path)
    text = files["markdown"].read_text()
    assert "this fit has 6 (silu)" in text and "n = 6," in text  # Table 12's fit: SiLU networks only
    assert "Figure 42" in text and "| tanh | 6 |" in text
    assert "Thesis Table 12" in text and "70300" in text
    assert files["activation_plot"].stat().st_size > 1000


def test_thesis_analyses_markdown_runs_what_each_study_holds():
    """The post-stage's chapter-4 section: eq. 4.1 on the batch study, t-tests on Problem A, nothing mixed."""
    from fhn_automl.post.analysis import thesis_analyses_markdown, trials_frame

    rows = [{"kind": k, "split": s, "layers": layers, "bs": 10, "study": "main", "problem": "problem_a",
             "mean_err": (2e-2 if k == "ddnn" and s == "scarce" else 3e-4) * (1 + 0.1 * i)}
            for i, layers in enumerate(["silu-16,silu-16", "silu-32,silu-16", "silu-32,silu-32"])
            for k in ("ddnn", "pinn") for s in ("scarce", "complete")]
    frame = pd.concat([batch_study(), trials_frame(_records(rows))], ignore_index=True)
    text = thesis_analyses_markdown(frame)
    assert "### Study batch_pinn" in text and "mean_err (eq. 4.1)" in text and "Thesis Table 3" in text
    assert "### Study main" in text and "| scarce | 3 | 3 |" in text and "7.42" in text
    main_part = text.split("### Study main", 1)[1]
    assert "eq. 4.1" not in main_part  # one batch size: eq. 4.1 does not apply to Problem A
