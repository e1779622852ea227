"""Every kind of bad search file fails on load with an error naming the file and the field."""

from __future__ import annotations

import pytest

from fhn_automl.search.__main__ import main
from fhn_automl.search.space import SearchSpaceError, load_search_space

GOOD = {
    "problem": "problem_b_s",
    "kind": "ddnn",
    "layers": "\n  choices: [silu-16, tanh-16]\n  depths: [2]",
}

BAD_FILES = [
    # (extra / replaced lines, field named in the error, words of the message)
    ({"problem": "problem_z"}, "problem", "names no problem"),
    ({"kind": "transformer"}, "kind", "must be one of"),
    ({"layers": "\n  choices: [silu16]\n  depths: [2]"}, "layers.choices", "activation-width"),
    ({"layers": "\n  choices: [gelu-16]\n  depths: [2]"}, "layers.choices", "unknown activation"),
    ({"layers": "\n  choices: [silu-16, silu-16]\n  depths: [2]"}, "layers.choices", "twice"),
    ({"layers": "\n  choices: [silu-16]\n  depths: [two]"}, "layers.depths", "positive integer"),
    ({"layers": "\n  choices: [silu-16]"}, "layers", "needs both"),
    ({"layers": "\n  choices: [silu-16]\n  depths: [2]\n  shape_classes: [star]"},
     "layers.shape_classes", "must be among"),
    ({"layers": "\n  choices: [silu-16]\n  depths: [2]\n  shape_classes: [bowtie]"},
     "layers.shape_classes", "leaves no layer sequence"),
    ({"batch_size": "[128, -1]"}, "batch_size", "positive integer"),
    ({"extra_region": "true"}, "extra_region", "must be false or a region"),
    ({"extra_region": "'physics:u0=0.5:0.4'"}, "extra_region", "low < high"),
    ({"window": "'split:1'"}, "window", "at least 2 windows"),
    ({"seeds": "[-1]"}, "seeds", "non-negative"),
    ({"steps": "0"}, "steps", "positive integer"),
    ({"recipe": "slow"}, "recipe", "fast or paper"),
    ({"options": "{seed: 3}"}, "options.seed", "set by its own field"),
    ({"lerning_rate": "0.1"}, "lerning_rate", "not a known field"),
    ({"search": "{algorithm: random}"}, "search.algorithm", "must be one of"),
    ({"search": "{algorithm: tpe}"}, "search.num_samples", "is required"),
    ({"search": "{algorithm: multi_objective, num_samples: 8, cost_metric: flops}"},
     "search.cost_metric", "must be one of"),
    ({"scheduler": "{type: asha, grace_fraction: 2}"}, "scheduler.grace_fraction", "fraction"),
    ({"scheduler": "hyperband"}, "scheduler.type", "must be one of"),
    ({"resources": "{workers: 0}"}, "resources.workers", "positive integer"),
    ({"resources": "{gpus_per_worker: 1.5}"}, "resources.gpus_per_worker", "fraction"),
    ({"resources": "{use_gpu: always}"}, "resources.gpus_per_worker", "must be > 0"),
    ({"resources": "{executor: spark}"}, "resources.executor", "must be one of"),
    ({"resources": "{executor: function, workers: 2}"}, "resources.workers", "must be 1"),
    ({"budgets": "{huge: {steps: 5}}"}, "budgets.huge", "is not a budget"),
    ({"budgets": "{smoke: {steps: -5}}"}, "budgets.smoke.steps", "positive integer"),
    ({"studies": "{a: {kind: pinn, layerz: 1}}"}, "studies.a.layerz", "not a known field"),
    ({"studies": "{a: {kind: gan}}"}, "studies.a.kind", "must be one of"),
]


def _write(tmp_path, fields: dict[str, str]):
    merged = {**GOOD, **fields}
    path = tmp_path / "bad_space.yaml"
    path.write_text("".join(f"{key}: {value}\n" for key, value in merged.items()))
    return path


@pytest.mark.parametrize(("fields", "field", "words"), BAD_FILES,
                         ids=[case[1] + "-" + case[2].split()[0] for case in BAD_FILES])
def test_bad_search_file_names_file_and_field(tmp_path, fields, field, words):
    path = _write(tmp_path, fields)
    with pytest.raises(SearchSpaceError) as caught:
        load_search_space(path)
    message = str(caught.value)
    assert str(path) in message
    assert f"field '{field}'" in message
    assert words in message


def test_the_good_file_loads(tmp_path):
    assert len(load_search_space(_write(tmp_path, {})).trials("paper")) == 4


def test_executor_defaults_to_train_and_takes_function(tmp_path):
    assert load_search_space(_write(tmp_path, {})).resources.executor == "train"
    path = _write(tmp_path, {"resources": "{executor: function, cpus_per_worker: 1}"})
    assert load_search_space(path).resources.executor == "function"


def test_not_yaml_and_not_a_mapping(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("problem: [unclosed\n")
    with pytest.raises(SearchSpaceError, match="not valid YAML"):
        load_search_space(path)
    path.write_text("- just\n- a list\n")
    with pytest.raises(SearchSpaceError, match=r"field '\(top level\)' must be a mapping"):
        load_search_space(path)


def test_unknown_search_name_lists_the_known_ones(capsys):
    assert main(["problem_q", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "no search file 'problem_q'" in err and "problem_b_s" in err
