"""The layer-sequence grid (thesis 3.2.1), budgets and the dry run: no Ray, milliseconds."""

from __future__ import annotations

import itertools

import pytest

from fhn_automl.learning.architecture import shape_class
from fhn_automl.search.__main__ import main
from fhn_automl.search.grid import count_layer_sequences, evenly_spaced, layer_sequences
from fhn_automl.search.space import load_search_space

B_S_CHOICES = ["silu-16", "tanh-16", "tanh-32", "silu-64", "tanh-64"]


def test_five_choices_at_depths_two_and_three_make_150_sequences():
    sequences = list(layer_sequences(B_S_CHOICES, [2, 3]))
    assert len(sequences) == 150 == count_layer_sequences(5, [2, 3])
    assert len(set(sequences)) == 150
    assert sequences[0] == "silu-16,silu-16"  # repetitions included
    assert sequences[25] == "silu-16,silu-16,silu-16"  # depth 2 first, then depth 3
    assert "tanh-32,silu-16" in sequences and "silu-16,tanh-32" in sequences  # order matters


def test_shape_class_filter_keeps_exactly_the_matching_sequences():
    kept = list(layer_sequences(B_S_CHOICES, [2, 3], shape_classes=["bowtie"],
                                shape_class_of=shape_class))
    widths = [16, 16, 32, 64, 64]
    expected = sum(1 for combo in itertools.product(widths, repeat=3)
                   if combo[1] < combo[0] and combo[1] < combo[2])
    assert len(kept) == expected > 0
    assert all(shape_class(s) == "bowtie" for s in kept)
    assert all(s.count(",") == 2 for s in kept)  # two-layer networks cannot be bowties


def test_filter_without_classifier_is_refused():
    with pytest.raises(ValueError):
        list(layer_sequences(B_S_CHOICES, [2], shape_classes=["funnel"]))


def test_evenly_spaced_covers_both_ends():
    assert evenly_spaced(list(range(10)), 3) == [0, 4, 9]
    assert evenly_spaced([1, 2], 5) == [1, 2]
    assert evenly_spaced(list(range(10)), 1) == [0]


def test_problem_b_s_file_expands_to_the_thesis_studies():
    space = load_search_space("problem_b_s")
    trials = space.trials("paper")
    by_study = {name: sum(1 for t in trials if t.study == name) for name in
                ("batch_pinn", "batch_pinn_architectures", "architecture")}
    assert by_study == {"batch_pinn": 20, "batch_pinn_architectures": 720, "architecture": 252}
    assert trials[0].steps == 1_000_000 and trials[0].recipe == "paper"
    # every model of Tables 4, 16 and 17 is in the architecture study, the thesis' best included
    architectures = {t.layers for t in trials if t.study == "architecture"}
    for layers in ("silu-32,tanh-32,silu-32", "silu-8,tanh-32,silu-8", "elu-8,silu-8",
                   "tanh-32,elu-8,silu-8", "tanh-64,tanh-32,silu-64", "elu-8,elu-8,tanh-32"):
        assert layers in architectures
    assert len({t.name for t in trials}) == len(trials)  # names are unique ...
    assert [t.name for t in space.trials("paper")] == [t.name for t in trials]  # ... and stable


def test_budgets_scale_steps_data_and_trial_count():
    space = load_search_space("problem_b_s")
    smoke = space.trials("smoke")
    assert len(smoke) == 3 and {t.study for t in smoke} == {"batch_pinn",
                                                            "batch_pinn_architectures",
                                                            "architecture"}
    assert all(t.steps == 2_000 and t.n_trajectories == 400 and t.recipe == "fast" for t in smoke)
    assert space.select_trials("paper", "architecture")[0].layers == "silu-8,silu-8"


def test_shape_filter_in_a_search_file(tmp_path):
    path = tmp_path / "bowties.yaml"
    path.write_text("problem: problem_b_s\nkind: ddnn\nlayers:\n  choices: [silu-8, silu-32]\n"
                    "  depths: [2, 3]\n  shape_classes: [bowtie, diamond]\n")
    trials = load_search_space(path).trials("paper")
    assert sorted(t.layers for t in trials) == ["silu-32,silu-8,silu-32", "silu-8,silu-32,silu-8"]


def test_dry_run_prints_count_and_first_trials(capsys):
    assert main(["problem_b_s", "--budget", "paper", "--dry-run", "--show", "2",
                 "--study", "architecture"]) == 0
    out = capsys.readouterr().out
    assert "252 trial(s)" in out
    assert "t0000-architecture" in out and "... 250 more" in out
    # the cost: 252 trials x the paper budget's steps, and a time from steps/s measured here
    steps = sum(t.steps for t in load_search_space("problem_b_s").select_trials("paper", "architecture"))
    assert f"cost: {steps:,} model-steps" in out
    assert "steps/s" in out and "estimated training time:" in out


def test_the_cost_estimate_adds_the_steps_and_times_them_at_the_measured_rates():
    from fhn_automl.search.cost import estimate_cost

    space = load_search_space("problem_b_s")
    trials = space.trials("smoke")
    estimate = estimate_cost(trials, space.resources, seconds=0.1, cpus=2)
    assert estimate.model_steps == sum(t.steps for t in trials) == 6_000
    assert estimate.pinn_steps == sum(t.steps for t in trials if t.kind == "pinn")
    rates = [rate for _, _, rate in estimate.measured]
    assert len(rates) == len({(t.layers, t.batch_size) for t in trials}) and all(r > 0 for r in rates)
    # every trial is timed at a rate between the slowest and the fastest measured
    assert estimate.model_steps / max(rates) * 0.999 <= estimate.compute_seconds <= estimate.model_steps / min(rates) * 1.001
    assert estimate.concurrent == 2 and estimate.wall_seconds == estimate.compute_seconds / 2


def test_problem_a_runs_the_tables_two_million_steps_and_the_sweep_the_thesis_909_networks():
    assert {t.steps for t in load_search_space("problem_a").trials("paper")} == {2_000_000}
    sweep = load_search_space("inference_sweep").trials("paper")
    assert len(sweep) == 909 and {len(t.layers.split(",")) for t in sweep} == {1, 2, 3, 4, 5}


@pytest.mark.parametrize("name", ["problem_a", "problem_b_s", "problem_b_c", "problem_b_c_iter",
                                  "problem_c", "inference_sweep"])
def test_every_shipped_search_file_loads(name):
    space = load_search_space(name)
    assert space.trials("paper") and space.trials("smoke")
