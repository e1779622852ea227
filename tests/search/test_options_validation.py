"""``options:`` of a search file are judged on load by the learning layer's TrainConfig (issue 8, item 7)."""

from __future__ import annotations

import pytest

from fhn_automl.search.space import SearchSpaceError, load_search_space

BASE = """\
problem: problem_b_s
kind: ddnn
layers: {sequences: [silu-8]}
"""


def _load(tmp_path, extra: str):
    path = tmp_path / "opts.yaml"
    path.write_text(BASE + extra)
    return path, load_search_space(path)


@pytest.mark.parametrize(("extra", "field", "words"), [
    ("options: {thread: 2}", "options.thread", "not a key of the learning layer's training config"),
    ("options: {threads: 0}", "options.threads", "threads must be >= 1"),
    ("options: {threads: [1, two]}", "options.threads", "must be of type int | None (got 'two')"),
    ("options: {threads: 2.5}", "options.threads", "must be of type int"),
    ("options: {lr: -0.1}", "options.lr", "lr must be positive"),
    ("options: {lr: fast}", "options.lr", "must be of type float"),
    ("options: {write_torchscript: 3}", "options.write_torchscript", "must be of type bool"),
    ("studies: {a: {options: {ic_batch_size: 0}}}", "studies.a.options.ic_batch_size", ">= 1"),
])
def test_bad_options_name_the_file_and_the_field(tmp_path, extra, field, words):
    with pytest.raises(SearchSpaceError) as caught:
        _load(tmp_path, extra)
    message = str(caught.value)
    assert str(tmp_path / "opts.yaml") in message and f"field '{field}'" in message and words in message


def test_exponent_numbers_without_a_dot_are_numbers(tmp_path):
    # YAML 1.1 reads 1e6 as the string '1e6'; the trainer would then fail in every trial
    _, space = _load(tmp_path, "steps: 1e3\nn_trajectories: 2e2\noptions: {lr: 1e-3, val_max_points: [1e4, 5000]}\n")
    study = space.studies[0]
    assert study.steps == 1000 and study.n_trajectories == 200
    assert study.options == {"lr": (0.001,), "val_max_points": (10_000, 5_000)}
    assert isinstance(study.options["val_max_points"][0], int)
    trial = space.trials("paper")[0]
    assert trial.options == {"lr": 0.001, "val_max_points": 10_000}


@pytest.mark.parametrize("argv", [["--max-failures", "-1"], ["--max-concurrent", "0"], ["--show", "-2"]])
def test_negative_counts_are_refused_by_the_command_line(argv, capsys):
    from fhn_automl.pipeline import main

    with pytest.raises(SystemExit) as caught:
        main(["problem_b_s", "--dry-run", *argv])
    assert caught.value.code == 2 and argv[0] in capsys.readouterr().err
