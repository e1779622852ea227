"""Datasets: schema, ranges, spacing, disjoint splits, byte-for-byte determinism, cache repair, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fhn_automl import data as data_cli
from fhn_automl.physics import _euler_cuda
from fhn_automl.physics.datasets import (
    DatasetError, build_dataset, dataset_sizes, ensure_dataset, read_manifest, read_split)
from fhn_automl.physics.euler import CudaUnavailableError, euler_trajectories
from fhn_automl.physics.problems import UnknownProblemError, get_problem

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    sizes = {"problem_a": None, "problem_b_s": 12, "problem_c": 10, "problem_b_c_iter": 400}
    return {name: ensure_dataset(name, root=root, n_trajectories=n, seed=3, device="cpu")
            for name, n in sizes.items()}


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*.parquet"))}


@pytest.mark.parametrize("name", ["problem_b_s", "problem_c"])
def test_trajectory_schema_ranges_and_spacing(built: dict[str, Path], name: str) -> None:
    problem = get_problem(name)
    manifest = read_manifest(built[name])
    assert set(manifest["files"]) == {"train.parquet", "val.parquet"}
    assert manifest["sizes"] == {"train": 5, "val": 5} if name == "problem_c" else {"train": 6, "val": 6}
    for split in ("train", "val"):
        columns = read_split(built[name], split)
        assert list(columns) == ["traj", *problem.inputs, "u", "w"]
        assert columns["traj"].dtype == np.int64
        assert all(values.dtype == np.float32 for key, values in columns.items() if key != "traj")
        for key, (low, high) in problem.initial_state_ranges().items():
            assert low <= columns[key].min() and columns[key].max() <= high
        n_saved = round(problem.t_end / problem.save_dt) + 1
        for traj in np.unique(columns["traj"]):
            rows = columns["traj"] == traj
            t = columns["t"][rows]
            assert len(t) == n_saved and t[0] == 0 and np.isclose(t[-1], problem.t_end)
            np.testing.assert_allclose(np.diff(t), problem.save_dt, atol=1e-5)
            first = np.flatnonzero(rows)[0]
            assert columns["u"][first] == columns["u0"][first] and columns["w"][first] == columns["w0"][first]
        assert manifest["files"][f"{split}.parquet"]["rows"] == len(columns["traj"])


def test_a_trajectory_matches_the_solver(built: dict[str, Path]) -> None:
    problem = get_problem("problem_c")
    columns = read_split(built["problem_c"], "val")
    rows = columns["traj"] == columns["traj"][0]
    u0, w0, k = (float(columns[key][rows][0]) for key in ("u0", "w0", "k"))
    U, W = euler_trajectories(problem.model, [u0], [w0], problem.i_app(k), dt=0.01, n_steps=5000, save_every=10,
                              backend="numpy", dtype=np.float64)
    # the file's inputs are float32-rounded, so compare loosely: a wrong step or spacing is far off
    np.testing.assert_allclose(columns["u"][rows], U[0], atol=2e-3)
    np.testing.assert_allclose(columns["w"][rows], W[0], atol=2e-3)


@pytest.mark.parametrize("name", ["problem_b_s", "problem_c", "problem_b_c_iter"])
def test_train_and_val_share_no_trajectory(built: dict[str, Path], name: str) -> None:
    train, val = read_split(built[name], "train"), read_split(built[name], "val")
    assert not set(train["traj"]) & set(val["traj"])
    state = ("u0", "w0") if "u0" in train else ("u", "w")
    starts = lambda cols: {tuple(row) for row in np.stack([cols[key] for key in state], axis=1)}  # noqa: E731
    assert not starts(train) & starts(val)


def test_iterator_pairs_and_rollout(built: dict[str, Path]) -> None:
    problem = get_problem("problem_b_c_iter")
    assert dataset_sizes(problem, 400) == {"train": 300, "val": 100, "rollout": 20}
    train = read_split(built["problem_b_c_iter"], "train")
    assert list(train) == ["traj", "u", "w", "u_next", "w_next"] and len(train["traj"]) == 300
    (u_low, u_high), (w_low, w_high) = problem.ranges["u"], problem.ranges["w"]  # domain + visited states
    assert u_low <= train["u"].min() and train["u"].max() <= u_high
    assert w_low <= train["w"].min() and train["w"].max() <= w_high
    U, W = euler_trajectories(problem.model, train["u"][:5], train["w"][:5], problem.i_app(), dt=0.01, n_steps=200,
                              backend="numpy", dtype=np.float64)
    np.testing.assert_allclose(train["u_next"][:5], U[:, -1], atol=1e-3)
    rollout = read_split(built["problem_b_c_iter"], "rollout")
    assert list(rollout) == ["traj", "t", "u0", "w0", "u", "w"]
    assert len(np.unique(rollout["traj"])) == 20 and np.isclose(rollout["t"].max(), 50.0)


def test_problem_a_point_sets(built: dict[str, Path]) -> None:
    folder = built["problem_a"]
    sets = {name: read_split(folder, name) for name in ("train", "val", "scarce", "complete")}
    assert {name: len(cols["t"]) for name, cols in sets.items()} == {"train": 1000, "val": 201, "scarce": 10,
                                                                     "complete": 1000}
    assert list(sets["val"]) == ["traj", "t", "u", "w"]
    for cols in sets.values():
        assert cols["t"][0] == 0 and np.isclose(cols["t"][-1], 20.0)
        assert cols["u"][0] == 0.5 and cols["w"][0] == 0.0
        np.testing.assert_allclose(cols["t"] / 0.01, np.round(cols["t"] / 0.01), atol=1e-3)  # on the solver grid
    np.testing.assert_allclose(np.diff(sets["val"]["t"]), 0.1, atol=1e-5)
    assert (folder / "train.parquet").read_bytes() == (folder / "complete.parquet").read_bytes()


def test_same_seed_same_bytes_other_seed_other_data(built: dict[str, Path], tmp_path: Path) -> None:
    again = build_dataset("problem_c", tmp_path / "again", n_trajectories=10, seed=3, device="cpu")
    assert _files(again) == _files(built["problem_c"])
    assert read_manifest(again)["files"] == read_manifest(built["problem_c"])["files"]
    other = build_dataset("problem_c", tmp_path / "other", n_trajectories=10, seed=4, device="cpu")
    assert _files(other)["train.parquet"] != _files(again)["train.parquet"]


def test_cache_is_reused_and_a_corrupted_or_missing_file_rebuilt(tmp_path: Path) -> None:
    folder = build_dataset("problem_b_s", tmp_path / "cache", n_trajectories=6, seed=0, device="cpu")
    original = _files(folder)
    stamp = (folder / "val.parquet").stat().st_mtime_ns
    assert build_dataset("problem_b_s", folder, n_trajectories=6, seed=0, device="cpu") == folder
    assert (folder / "val.parquet").stat().st_mtime_ns == stamp  # reused, not rewritten

    train = folder / "train.parquet"
    data = bytearray(train.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: same size, wrong checksum
    train.write_bytes(bytes(data))
    (folder / "val.parquet").unlink()
    build_dataset("problem_b_s", folder, n_trajectories=6, seed=0, device="cpu")
    assert _files(folder) == original

    train.write_bytes(original["train.parquet"][:100])  # cut short, as by an interrupted copy
    build_dataset("problem_b_s", folder, n_trajectories=6, seed=0, device="cpu")
    assert _files(folder) == original
    assert not list(folder.glob(".*.tmp"))


def test_a_different_request_in_the_same_folder_rebuilds(tmp_path: Path) -> None:
    folder = build_dataset("problem_b_s", tmp_path / "f", n_trajectories=4, seed=0, device="cpu")
    build_dataset("problem_b_s", folder, n_trajectories=6, seed=0, device="cpu")
    assert len(np.unique(read_split(folder, "train")["traj"])) == 3
    assert read_manifest(folder)["n_trajectories"] == 6


def test_manifest_records_the_request(built: dict[str, Path]) -> None:
    manifest = json.loads((built["problem_b_s"] / "manifest.json").read_text())
    assert manifest["problem"] == "problem_b_s" and manifest["seed"] == 3 and manifest["n_trajectories"] == 12
    assert manifest["solver"]["dt"] == 0.01 and manifest["solver"]["save_dt"] == 0.1
    assert set(manifest["code"]) == {"git_commit", "package_version"}
    assert all(len(record["sha256"]) == 64 for record in manifest["files"].values())
    assert built["problem_b_s"].name == "problem_b_s-n12-seed3"


def test_read_split_names_the_available_splits(built: dict[str, Path]) -> None:
    with pytest.raises(FileNotFoundError, match="train"):
        read_split(built["problem_b_s"], "test")


@pytest.mark.parametrize("size", [0, -5])
def test_non_positive_sizes_are_rejected_before_writing(tmp_path: Path, size: int) -> None:
    with pytest.raises(DatasetError, match="positive"):
        build_dataset("problem_b_s", tmp_path / "out", n_trajectories=size)
    assert not (tmp_path / "out").exists()


def test_unknown_problem_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(UnknownProblemError, match="problem_b_s"):
        build_dataset("problem_z", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unwritable_out_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    for out in (blocker, blocker / "below"):
        with pytest.raises(DatasetError, match="not a directory|cannot write"):
            build_dataset("problem_b_s", out, n_trajectories=4)
    assert blocker.read_text() == "not a folder"


def test_cuda_without_cupy_is_a_clear_error(tmp_path: Path) -> None:
    if _euler_cuda.cuda_unavailable_reason() is None:
        pytest.skip("CUDA is available here: the error path cannot be shown")
    with pytest.raises(CudaUnavailableError, match="cupy"):
        build_dataset("problem_b_s", tmp_path / "out", n_trajectories=4, device="cuda")
    assert not (tmp_path / "out").exists()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fhn_automl.data", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def test_cli_bad_input_exits_non_zero_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    unknown = _cli("problem_z", "--out", str(tmp_path / "a"))  # a real process: the exit code is what CI sees
    assert unknown.returncode != 0 and "problem_b_s" in unknown.stderr and "problem_z" in unknown.stderr
    assert data_cli.main(["problem_b_s", "--out", str(tmp_path / "b"), "--n-trajectories", "1"]) != 0
    assert "at least 2" in capsys.readouterr().err
    if _euler_cuda.cuda_unavailable_reason() is not None:
        assert data_cli.main(["problem_b_s", "--out", str(tmp_path / "c"), "--device", "cuda"]) != 0
        assert "pip install" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("option", "value"), [("--n-trajectories", "0"), ("--n-trajectories", "-3"),
                                               ("--n-trajectories", "abc"), ("--n-trajectories", "nan"),
                                               ("--seed", "-1"), ("--seed", "1.5")])
def test_cli_bad_number_is_an_argparse_error_naming_the_option(option: str, value: str, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        data_cli.main(["problem_b_s", "--out", str(tmp_path / "out"), option, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and value in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_cli_writes_a_dataset(tmp_path: Path) -> None:
    assert data_cli.main(["problem_b_c_small", "--out", str(tmp_path / "d"), "--n-trajectories", "4", "--seed", "1",
                          "--device", "cpu"]) == 0
    assert {p.name for p in (tmp_path / "d").iterdir()} >= {"train.parquet", "val.parquet", "manifest.json"}
