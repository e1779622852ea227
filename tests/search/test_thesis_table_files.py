"""benchmarks/thesis_tables/*.yaml (issue 16 item 3) stay valid search files: each trains its table's named
models at a stated sample count per model on the code domain: the thesis' own count (1M steps x batch 128 = 1.28e8
samples) for the FHN-initial-state tables, a tenth of its steps (200k x batch 10) for Table 14's problem A, which has
one fixed initial state and so no domain variant."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhn_automl.reproduce import get_plan
from fhn_automl.search.space import load_search_space

FILES = sorted((Path(__file__).resolve().parents[2] / "benchmarks" / "thesis_tables").glob("table*_matched.yaml"))


# table -> (samples per model, problem-name suffix the file must use)
EXPECTED = {
    "4": (1_000_000 * 128, "_code"),
    "7": (1_000_000 * 128, "_code"),
    "8": (1_000_000 * 128, "_code"),
    "9": (1_000_000 * 128, "_code"),
    "10": (1_000_000 * 128, "_code"),
    "14": (200_000 * 10, "problem_a"),  # a tenth of the thesis' 2M steps x batch 10
}


def test_there_is_one_file_per_table():
    assert sorted(f.stem.removeprefix("table").removesuffix("_matched") for f in FILES) == sorted(EXPECTED)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_matched_file_trains_the_tables_named_models_at_the_thesis_budget(path: Path):
    table = path.stem.removeprefix("table").removesuffix("_matched")
    plan = get_plan(table)
    samples, problem_suffix = EXPECTED[table]
    trials = load_search_space(path).trials("paper")
    assert {t.layers for t in trials} == set(plan.layers["small"])  # the models reproduce's small budget names
    if plan.study is not None:  # a table without a named study reads every trial of its experiment
        assert {t.study for t in trials} == {plan.study}
    for trial in trials:
        assert trial.steps * trial.batch_size == samples
        assert trial.problem.endswith(problem_suffix) and trial.recipe == "fast"
