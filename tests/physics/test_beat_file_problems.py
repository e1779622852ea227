"""A user's cell-model file as a beat problem: ``beat:PATH?OPTIONS`` wherever a problem name goes (issue 22).

The model file is Myokit's bundled example (Luo-Rudy 1991, 8 states), copied into the test's folder.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from fhn_automl.physics.problems import (PROBLEM_CHOICES, PROBLEMS, ProblemSpecError, UnknownProblemError,
                                         get_problem, problem_name)


@pytest.fixture(scope="module")
def lr91(tmp_path_factory: pytest.TempPathFactory) -> Path:
    myokit = pytest.importorskip("myokit")
    folder = tmp_path_factory.mktemp("models")
    return Path(shutil.copy(Path(myokit.__file__).parent / "_bin" / "example.mmt", folder / "lr91.mmt"))


def test_a_model_file_spec_is_a_beat_problem_with_a_canonical_key(lr91: Path) -> None:
    problem = get_problem(f"beat:lr91.mmt?vary=gNa,ica.gCa&n_prepace=3", base_dir=lr91.parent)
    assert problem.kind == "beat" and problem.name == "lr91_beat" == problem_name(problem.key)
    # short names resolved to the file's own, the path made absolute: the key any process re-resolves
    assert problem.key == f"beat:{lr91}?vary=ina.gNa,ica.gCa&n_prepace=3"
    assert problem.inputs == ("t", "ina.gNa_scale", "ica.gCa_scale") and problem.outputs == ("V",)
    assert problem.beat.outputs == {"V": "membrane.V"} and problem.beat.units == {"V": "mV"}
    assert problem.beat.n_prepace == 3 and problem.beat.period == 1000.0 == problem.t_end
    assert problem.beat.dt == problem.beat.pace_dt == 0.01  # the model's default dt, pacing at the same step
    assert problem.ranges["ina.gNa_scale"] == (0.5, 2.0)
    again = get_problem(problem.key)
    assert again == problem and again.key == problem.key
    # the safe name comes from the spec alone (no file read): trial names, folders, registered models
    assert problem_name("beat:/nowhere/My Model-2.cellml?vary=x") == "My_Model_2_beat"
    assert problem_name("beat:/nowhere/a.mmt?name=mine") == "mine" and problem_name("problem_b_s") == "problem_b_s"
    for accepted in ("tp06_beat", f"beat:{lr91}"):
        assert accepted in PROBLEM_CHOICES
    assert "beat" not in PROBLEM_CHOICES and "nope" not in PROBLEM_CHOICES


@pytest.mark.parametrize("options, named", [
    ("", "declares no varied parameters: give vary="),
    ("?vary=gZZ", "has no parameter 'gZZ'"),
    ("?vary=gNa&colour=red", "unknown option 'colour'"),
    ("?vary=gNa&vary=gCa", "option 'vary' is given twice"),
    ("?vary", "option 'vary' is not KEY=VALUE"),
    ("?vary=gNa&dt=0.03", "dt = 0.03 does not divide the cycle length 1000"),
    ("?vary=gNa&dt=abc", "option dt='abc' is not a number"),
    ("?vary=gNa&n_prepace=-1", "option n_prepace='-1' must be at least 0"),
    ("?vary=gNa&scale=0.01:2", "ina.gNa = 16 x 0.01 is outside its declared range"),
    ("?vary=gNa&outputs=ina.m", "must include the membrane potential membrane.V"),
    ("?vary=gNa&name=9lives", "option name='9lives' must be a letter"),
    ("?vary=gNa&name=tp06_beat", "'tp06_beat' is a built-in problem's"),
    ("?vary=gNa&method=rk4", "option method='rk4'"),
])
def test_bad_beat_specs_name_the_bad_part(lr91: Path, options: str, named: str) -> None:
    with pytest.raises(ProblemSpecError, match=_escaped(named)):
        get_problem(f"beat:{lr91}{options}")


def test_missing_or_unreadable_model_files_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(ProblemSpecError, match=_escaped(f"model file {tmp_path / 'missing.mmt'} does not exist")):
        get_problem("beat:missing.mmt?vary=g", base_dir=tmp_path)
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ProblemSpecError, match="notes.txt"):
        get_problem(f"beat:{tmp_path / 'notes.txt'}?vary=g")
    with pytest.raises(ProblemSpecError, match="no model file after 'beat:'"):
        get_problem("beat:")
    # a subclass: every caller that handles an unknown problem name handles a bad spec too
    with pytest.raises(UnknownProblemError, match="beat:MODEL_FILE"):
        get_problem("problem_z")
    assert "lr91_beat" not in PROBLEMS  # resolving a spec registers nothing


def test_search_files_carry_the_canonical_spec_and_refuse_clashing_names(lr91: Path, tmp_path: Path) -> None:
    from fhn_automl.search.space import SearchSpaceError, load_search_space

    grid = ("kind: ddnn\nlayers: {sequences: ['tanh-8']}\nsteps: 10\nval_every: 5\n"
            "budgets: {smoke: {n_trajectories: 4, steps: 10, val_every: 5}}\n")
    # a relative model path is taken from the search file's folder, not from where the search runs
    search = lr91.parent / "mine.yaml"
    search.write_text("problem: beat:lr91.mmt?vary=gNa\n" + grid)
    trial = load_search_space(search).trials("smoke")[0]
    assert trial.problem == f"beat:{lr91}?vary=ina.gNa"
    assert "-lr91_beat-" in trial.name and "/" not in trial.name
    clash = tmp_path / "clash.yaml"
    clash.write_text(f"problem: ['beat:{lr91}?vary=gNa', 'beat:{lr91}?vary=gCa']\n" + grid)
    with pytest.raises(SearchSpaceError, match="are both named 'lr91_beat'"):
        load_search_space(clash)
    missing = tmp_path / "missing.yaml"
    missing.write_text("problem: beat:gone.mmt?vary=gNa\n" + grid)
    with pytest.raises(SearchSpaceError, match=_escaped(f"field 'problem' problem 'beat:gone.mmt?vary=gNa': model "
                                                       f"file {tmp_path / 'gone.mmt'} does not exist")):
        load_search_space(missing)
    # --problem: a built-in file's grid on the model file, a search (MLflow experiment) of its own
    space = load_search_space("ms_beat", problem=f"beat:{lr91}?vary=gNa")
    assert space.name == "ms_beat-lr91_beat"
    assert {t.problem for t in space.trials("smoke")} == {f"beat:{lr91}?vary=ina.gNa"}
    with pytest.raises(SearchSpaceError, match="--problem: problem 'beat:nope.mmt"):
        load_search_space("ms_beat", problem="beat:nope.mmt?vary=g")


def test_model_file_to_dataset_and_trained_surrogate_through_the_clis(lr91: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    """``data`` and ``train`` take the spec; the model's spec.json keeps the key, so it loads anywhere."""
    from fhn_automl.data import main as data_main
    from fhn_automl.learning.model_io import load_model
    from fhn_automl.train import main as train_main

    spec = f"beat:{lr91}?vary=gNa,gCa&n_prepace=1&dt=0.02&save_dt=4&n_train=3&n_val=2"
    assert data_main([spec, "--out", str(tmp_path / "data" / "set"), "--device", "cpu"]) == 0
    manifest = json.loads((tmp_path / "data" / "set" / "manifest.json").read_text())
    assert manifest["problem"] == "lr91_beat" and manifest["request"]["sizes"] == {"train": 3, "val": 2}
    assert manifest["request"]["scaled"] == ["ina.gNa", "ica.gCa"]
    out = tmp_path / "run"
    assert train_main([spec, "--layers", "tanh-8", "--steps", "20", "--val-every", "10", "--device", "cpu",
                       "--data-root", str(tmp_path / "data"), "--out", str(out)]) == 0
    final = json.loads((out / "metrics.json").read_text())["final"]
    assert final["status"] == "finished" and Path(final["dataset_dir"]).name == "lr91_beat-thesis-seed0"
    assert math.isfinite(final["final_full_val_v_rmse"]) and final["final_full_val_v_rmse"] > 0
    saved = json.loads((out / "model" / "spec.json").read_text())
    assert saved["problem"] == get_problem(spec).key and saved["inputs"] == ["t", "ina.gNa_scale", "ica.gCa_scale"]
    model = load_model(out / "model")  # re-resolves the problem from spec.json
    assert model is not None
    capsys.readouterr()
    # a bad spec: exit 2, the bad part named, nothing written
    assert train_main([f"beat:{lr91}?vary=gZZ", "--out", str(tmp_path / "bad")]) == 2
    assert data_main([f"beat:{lr91}?vary=gZZ", "--out", str(tmp_path / "bad")]) == 2
    assert capsys.readouterr().err.count("has no parameter 'gZZ'") == 2
    assert not (tmp_path / "bad").exists()


def _escaped(text: str) -> str:
    import re

    return re.escape(text)
