"""Every bad input of issue 21 (item 8, and item 4's accepted ones), as one table.

Each row: the command, what is wrong with its input, and the named error it must give: exit 2, a
message naming the file / field / value, and nothing written where it was told to write. The
commands run in-process through their ``main``; the files they read are made here from one tiny
trained model and one tiny dataset.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

BASE_SEARCH = """\
problem: problem_b_s
kind: ddnn
steps: 200
val_every: 100
layers: {choices: [silu-8], depths: [1]}
search: {algorithm: grid, metric: val_mean_err}
"""


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 20-trajectory B_S dataset and a 20-step silu-8 run (model + checkpoint): a few seconds."""
    from fhn_automl.physics.datasets import build_dataset
    from fhn_automl.train import main as train_main

    root = tmp_path_factory.mktemp("bad_inputs")
    data = build_dataset("problem_b_s", root / "data", n_trajectories=20, seed=0, device="cpu")
    assert train_main(["problem_b_s", "--layers", "silu-8", "--steps", "20", "--val-every", "10", "--device", "cpu",
                       "--data-dir", str(data), "--out", str(root / "run")]) == 0
    return {"root": root, "data": Path(data), "model": root / "run" / "model", "checkpoint": root / "run" / "checkpoint"}


# ----------------------------------------------------------------------------- builders of bad inputs

def _search_file(text: str) -> Callable[[Path, dict], list[str]]:
    def make(tmp: Path, made: dict) -> list[str]:
        (tmp / "s.yaml").write_bytes(text.encode() if isinstance(text, str) else text)
        return [str(tmp / "s.yaml"), "--budget", "smoke", "--dry-run"]
    return make


def _search_folder(tmp: Path, made: dict) -> list[str]:
    (tmp / "s.yaml").mkdir()
    return [str(tmp / "s.yaml"), "--budget", "smoke", "--dry-run"]


def _search_binary(tmp: Path, made: dict) -> list[str]:
    (tmp / "s.yaml").write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(128, 256)))
    return [str(tmp / "s.yaml"), "--budget", "smoke", "--dry-run"]


def _search_storage_not_writable(tmp: Path, made: dict) -> list[str]:
    (tmp / "s.yaml").write_text(BASE_SEARCH)
    (tmp / "a_file").write_text("x")
    return [str(tmp / "s.yaml"), "--budget", "smoke", "--no-post", "--storage", str(tmp / "a_file" / "ray"),
            "--tracking-uri", f"sqlite:///{tmp / 'out' / 'm.db'}"]


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n" + "\n".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]" for p, n in zip("bcdefgh", "cdefghi")) + "\n" + BASE_SEARCH


def _train(*extra: str, data: str | None = "data") -> Callable[[Path, dict], list[str]]:
    def make(tmp: Path, made: dict) -> list[str]:
        args = ["problem_b_s", "--layers", "silu-8", "--steps", "20", "--val-every", "10", "--device", "cpu",
                "--out", str(tmp / "out")]
        if data is not None:
            args += ["--data-dir", str(made[data]) if data in made else str(tmp / data)]
        return args + [a.format(tmp=tmp, **{k: str(v) for k, v in made.items()}) for a in extra]
    return make


def _train_resume(kind: str) -> Callable[[Path, dict], list[str]]:
    def make(tmp: Path, made: dict) -> list[str]:
        checkpoint = tmp / "checkpoint"
        if kind != "missing":
            shutil.copytree(made["checkpoint"], checkpoint)
        if kind == "truncated":
            state = checkpoint / "train_state.pt"
            state.write_bytes(state.read_bytes()[:100])
        layers = "silu-16,silu-16" if kind == "architecture" else "silu-8"
        return ["problem_b_s", "--layers", layers, "--steps", "30", "--val-every", "10", "--device", "cpu",
                "--data-dir", str(made["data"]), "--out", str(tmp / "out"), "--resume", str(checkpoint)]
    return make


def _broken_data(kind: str) -> Callable[[Path, dict], list[str]]:
    def make(tmp: Path, made: dict) -> list[str]:
        data = tmp / "data"
        shutil.copytree(made["data"], data)
        if kind == "garbage":
            (data / "train.parquet").write_text("not parquet")
        else:
            (data / "manifest.json").write_text("{broken")
        return _train(data=None)(tmp, made) + ["--data-dir", str(data)]
    return make


def _train_out_a_file(tmp: Path, made: dict) -> list[str]:
    (tmp / "out").write_text("a file")
    return _train()(tmp, made)


def _model(change: Callable[[Path], None], problem: str = "problem_b_s") -> Callable[[Path, dict], list[str]]:
    def make(tmp: Path, made: dict) -> list[str]:
        folder = tmp / "model"
        shutil.copytree(made["model"], folder)
        change(folder)
        return ["--problem", problem, "--model-dir", str(folder), "--device", "cpu", "--n", "100", "--n-ref", "8",
                "--repeats", "1", "--warmup", "0", "--dts", "0.1", "--backend", "eager", "--out", str(tmp / "out")]
    return make


def _spec(**changes: object) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        spec = json.loads((folder / "spec.json").read_text())
        spec.update(changes)
        (folder / "spec.json").write_text(json.dumps(spec))
    return change


def _weights(kind: str) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        import torch

        path = folder / "weights.pt"
        if kind == "truncated":
            path.write_bytes(path.read_bytes()[:64])
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "pickled":
            torch.save({"x": _Pickled()}, path)
        else:  # wrong shape
            state = torch.load(path, weights_only=True)
            state[next(k for k in state if k.endswith("weight"))] = torch.zeros(3, 3)
            torch.save(state, path)
    return change


class _Pickled:
    """An arbitrary object: unpickling it would run code of the writer's choosing."""


def _no_file(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_text("{\"problem\": ") if name == "spec.json" else None


# ----------------------------------------------------------------------------- the table

@dataclass(frozen=True)
class Case:
    command: str
    make: Callable[[Path, dict], list[str]]
    words: tuple[str, ...]  # all must appear in stderr


CASES = {
    # search files (python -m fhn_automl.search)
    "search file is a folder": Case("search", _search_folder, ("s.yaml", "is a folder")),
    "search file is binary": Case("search", _search_binary, ("s.yaml", "not a text (UTF-8) file")),
    "search --storage not writable": Case("search", _search_storage_not_writable, ("--storage", "a_file",
                                                                                  "cannot write")),
    "YAML alias bomb": Case("search", _search_file(ALIAS_BOMB), ("s.yaml", "alias *a is not allowed")),
    "depths: [40]": Case("search", _search_file(BASE_SEARCH.replace("depths: [1]", "depths: [40]")),
                         ("s.yaml", "layers.depths", "at most 32", "40")),
    "a grid too large": Case("search", _search_file(BASE_SEARCH.replace(
        "choices: [silu-8], depths: [1]", "choices: [silu-8, silu-16, silu-32, tanh-8, tanh-16, tanh-32], depths: [9]")),
        ("s.yaml", "layers.depths", "layer sequences")),
    "duplicate key": Case("search", _search_file(BASE_SEARCH + "steps: 300\n"), ("s.yaml", "'steps' appears twice")),
    "lr: .inf": Case("search", _search_file(BASE_SEARCH + "options: {lr: .inf}\n"),
                     ("s.yaml", "options.lr", "inf")),
    "gpus_per_worker: .nan": Case("search", _search_file(BASE_SEARCH + "resources: {gpus_per_worker: .nan}\n"),
                                  ("s.yaml", "resources.gpus_per_worker", "nan")),
    "cpus_per_worker: .nan": Case("search", _search_file(BASE_SEARCH + "resources: {cpus_per_worker: .nan}\n"),
                                  ("s.yaml", "resources.cpus_per_worker", "nan")),
    "steps: 1e300": Case("search", _search_file(BASE_SEARCH.replace("steps: 200", "steps: 1e300")),
                         ("s.yaml", "'steps'", "at most", "1e+300")),
    "width 2e9": Case("search", _search_file(BASE_SEARCH.replace("silu-8", "silu-2000000000")),
                      ("s.yaml", "layers.choices", "silu-2000000000", "at most 16384")),
    "train_split: nosuch": Case("search", _search_file(BASE_SEARCH + "options: {train_split: nosuch}\n"),
                                ("s.yaml", "options.train_split", "'nosuch'", "known: train, val")),
    "batch_size: 1e15": Case("search", _search_file(BASE_SEARCH + "batch_size: 1e15\n"),
                             ("s.yaml", "'batch_size'", "at most")),
    # train (python -m fhn_automl.train)
    "train --device tpu": Case("train", _train("--device", "tpu"), ("--device", "'tpu'")),
    "train --resume missing": Case("train", _train_resume("missing"), ("--resume", "checkpoint",
                                                                       "no train_state.pt")),
    "train --resume truncated": Case("train", _train_resume("truncated"), ("train_state.pt",
                                                                           "not a readable checkpoint")),
    "train --resume other architecture": Case("train", _train_resume("architecture"),
                                              ("train_state.pt", "another architecture")),
    "train garbage data": Case("train", _broken_data("garbage"), ("train.parquet", "SHA-256 differs")),
    "train missing data": Case("train", _train(data="no_such_data"), ("no_such_data", "no such folder")),
    "train broken manifest": Case("train", _broken_data("manifest"), ("manifest.json", "not readable JSON")),
    "train unknown split": Case("train", _train("--train-split", "nosuch"), ("no split 'nosuch'", "train, val")),
    "train --out a file": Case("train", _train_out_a_file, ("--out", "not a folder")),
    "train width 200000": Case("train", _train("--layers", "silu-200000"), ("silu-200000", "16384")),
    # data (python -m fhn_automl.data)
    "data --n-trajectories 1e15": Case("data", lambda tmp, made: ["problem_b_s", "--n-trajectories", "1e15",
                                                                  "--out", str(tmp / "out")],
                                       ("n_trajectories 1000000000000000", "GiB")),
    # bench (python -m fhn_automl.bench)
    "bench --n 1e13": Case("bench", lambda tmp, made: ["--n", "1e13", "--device", "cpu", "--out", str(tmp / "out")],
                           ("--n 10,000,000,000,000", "GiB")),
    "bench model of another problem": Case("bench", _model(lambda folder: None, problem="problem_c"),
                                           ("the model is for problem_b_s", "--problem is problem_c")),
    "bench spec with problem: nosuch": Case("bench", _model(_spec(problem="nosuch")),
                                            ("spec.json", "'problem'", "nosuch")),
    "bench changed spec (layers)": Case("bench", _model(_spec(layers="silu-16")),
                                        ("weights.pt", "does not fit spec.json's layers silu-16")),
    "bench broken spec": Case("bench", _model(_no_file("spec.json")), ("spec.json", "not readable JSON")),
    "bench spec without inputs": Case("bench", _model(_spec(inputs=[])), ("spec.json", "'inputs' is empty")),
    "bench unknown activation": Case("bench", _model(_spec(layers="relu6-8")), ("spec.json", "relu6")),
    "bench truncated weights": Case("bench", _model(_weights("truncated")), ("weights.pt", "not a readable")),
    "bench empty weights": Case("bench", _model(_weights("empty")), ("weights.pt", "not a readable")),
    "bench pickled weights": Case("bench", _model(_weights("pickled")), ("weights.pt", "Python objects")),
    "bench wrong-shape weights": Case("bench", _model(_weights("shape")), ("weights.pt", "does not fit")),
}


def _main(command: str) -> Callable[[list[str]], int]:
    if command == "search":
        from fhn_automl.pipeline import main
    elif command == "train":
        from fhn_automl.train import main
    elif command == "data":
        from fhn_automl.data import main
    else:
        from fhn_automl.bench import main
    return main


@pytest.mark.parametrize("name", list(CASES))
def test_each_bad_input_is_named_exit_2_nothing_written(name, made, tmp_path, capsys):
    case = CASES[name]
    argv = case.make(tmp_path, made)
    before = {p for p in tmp_path.rglob("*")}
    try:
        code = _main(case.command)(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, f"{name}: exit {code}, stderr: {err[-800:]}"
    assert "Traceback" not in err
    for words in case.words:
        assert words in err, f"{name}: {words!r} not in: {err[-800:]}"
    written = {p for p in tmp_path.rglob("*")} - before
    assert not written, f"{name}: wrote {sorted(map(str, written))}"
