"""The figures the search logs for a trial (MLflow params) count every network of the model."""

import dataclasses

from fhn_automl.search.space import TrialSpec
from fhn_automl.search.trial import trial_figures


def test_search_figures_of_a_split_window_trial_count_its_windows():
    trial = TrialSpec(study="s", index=0, problem="problem_b_c_small", kind="ddnn", layers="silu-8,silu-8",
                      batch_size=64, extra_region=None, window="split:5", seed=0, steps=10, val_every=5,
                      recipe="fast", n_trajectories=None, options={})
    assert trial_figures(trial)["neurons"] == 5 * 16
    assert trial_figures(dataclasses.replace(trial, window=None))["neurons"] == 16
