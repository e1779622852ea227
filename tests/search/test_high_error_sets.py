"""``extra_region: data:high_error``: the driver builds the set once from a base model and hands
its path to the trials (thesis 4.2.3 / 4.3)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from fhn_automl.search.high_error import ensure_high_error_sets
from fhn_automl.search.trial import build_loop_config
from fhn_automl.search.space import TrialSpec


def _trial(index: int, extra_region: str | None) -> TrialSpec:
    return TrialSpec(index=index, study="s", problem="problem_b_c_iter", kind="iter",
                     layers="silu-8,silu-8", batch_size=128, extra_region=extra_region, window=None,
                     seed=0, steps=200, val_every=100, recipe="fast", n_trajectories=2000)


def test_high_error_set_is_built_once_and_reaches_the_trials(tmp_path):
    from fhn_automl.learning.trainer import train
    from fhn_automl.physics.datasets import ensure_dataset, read_split

    data_dir = str(ensure_dataset("problem_b_c_iter", root=str(tmp_path), n_trajectories=2000,
                                  seed=0, device="cpu"))
    trials = [_trial(0, None), _trial(1, "data:high_error")]
    sets = ensure_high_error_sets(trials, {"problem_b_c_iter": data_dir})
    region = sets["problem_b_c_iter:data:high_error"]
    path = region.removeprefix("data:")
    assert path.endswith("high_error.parquet")
    table = pq.read_table(path)
    assert set(read_split(data_dir, "train")) == set(table.column_names) and table.num_rows > 0
    manifest = json.loads((tmp_path / data_dir / "high_error.json").read_text())
    assert manifest["rule"].startswith("top 5%") and manifest["centres"] > 0

    mtime = (tmp_path / data_dir / "high_error.parquet").stat().st_mtime_ns
    assert ensure_high_error_sets(trials, {"problem_b_c_iter": data_dir}) == sets  # cached
    assert (tmp_path / data_dir / "high_error.parquet").stat().st_mtime_ns == mtime

    plan = {"data_dirs": {"problem_b_c_iter": data_dir}, "extra_sets": sets, "train_fn": "x:y",
            "device": "cpu", "threads": 1, "data_root": str(tmp_path)}
    with_set = build_loop_config({"trial": trials[1].as_dict(), "plan": plan})["train_config"]
    without = build_loop_config({"trial": trials[0].as_dict(), "plan": plan})["train_config"]
    assert with_set["extra_region"] == region and without["extra_region"] is None
    final = train({**with_set, "steps": 50, "val_every": 50, "out_dir": str(tmp_path / "out")})
    assert final["status"] == "finished" and "loss_extra_data" in final
