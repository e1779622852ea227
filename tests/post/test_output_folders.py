"""Output folders (bench --out, post --out, pull --to): never delete what fhn_automl did not write."""

import json
import os
from pathlib import Path

import pytest

from fhn_automl.post.errors import ForeignOutputFolderError
from fhn_automl.post.staging import MARKER, staged_folder


def _user_folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "thesis.tex").write_text("a user's work")
    return path


def test_a_folder_with_user_files_is_refused_and_kept(tmp_path):
    target = _user_folder(tmp_path / "mine")
    with pytest.raises(ForeignOutputFolderError, match="thesis.tex"):
        with staged_folder(target) as staging:
            (staging / "report.md").write_text("x")
    assert (target / "thesis.tex").read_text() == "a user's work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no staging folder left behind
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(ForeignOutputFolderError, match="not a folder"):
        with staged_folder(tmp_path / "a_file"):
            pass
    assert (tmp_path / "a_file").read_text() == "not a folder"


def test_own_output_is_replaced_and_an_empty_folder_is_filled_in_place(tmp_path):
    target = tmp_path / "report"
    target.mkdir()
    inode = target.stat().st_ino
    with staged_folder(target) as staging:
        (staging / "first.md").write_text("1")
    assert target.stat().st_ino == inode  # filled in place: it may be someone's current directory
    assert sorted(p.name for p in target.iterdir()) == sorted([MARKER, "first.md"])
    with staged_folder(target) as staging:
        (staging / "second.md").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == sorted([MARKER, "second.md"])  # ours: replaced whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_bench_out_dot_on_a_users_folder_exits_non_zero_and_keeps_it(tmp_path, monkeypatch, capsys):
    from fhn_automl.bench import main

    folder = _user_folder(tmp_path / "cwd")
    monkeypatch.chdir(folder)
    assert main(["--out", ".", "--n", "1000", "--n-ref", "8", "--repeats", "1", "--device", "cpu"]) == 2
    assert "not written by fhn_automl" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["thesis.tex"]


def test_post_refuses_a_users_folder(tiny_experiment, tmp_path, capsys):
    from fhn_automl.post.__main__ import main as post_main

    folder = _user_folder(tmp_path / "out")
    assert post_main([tiny_experiment["experiment"], "--tracking-uri", tiny_experiment["uri"], "--out", str(folder),
                      "--backend", "eager", "--device", "cpu", "--budget", "smoke", "--no-register", "--quiet"]) == 2
    assert "not written by fhn_automl" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["thesis.tex"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_pull_refuses_a_users_folder(tiny_experiment, post_result, tmp_path, capsys):
    from fhn_automl.pull import main as pull_main

    folder = _user_folder(tmp_path / "pulled")
    assert pull_main(["problem_b_s", "--to", str(folder), "--tracking-uri", tiny_experiment["uri"]]) == 2
    assert "not written by fhn_automl" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["thesis.tex"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pulled"]


def test_files_a_user_adds_to_our_folder_survive_the_next_run_and_the_mode_is_kept(tmp_path):
    """Issue 21 item 1: an adopted folder's later user files were deleted and its mode became 700."""
    target = tmp_path / "report"
    target.mkdir()
    os.chmod(target, 0o755)
    with staged_folder(target) as staging:
        (staging / "report.md").write_text("1")
        (staging / "figures").mkdir()
        (staging / "figures" / "a.png").write_text("png")
    (target / "notes.txt").write_text("mine")
    (target / "figures" / "my_sketch.png").write_text("mine too")
    with staged_folder(target) as staging:
        (staging / "other.md").write_text("2")
    assert (target / "notes.txt").read_text() == "mine"
    assert (target / "figures" / "my_sketch.png").read_text() == "mine too"
    assert not (target / "report.md").exists() and not (target / "figures" / "a.png").exists()  # ours: removed
    assert (target / "other.md").read_text() == "2"
    assert target.stat().st_mode & 0o777 == 0o755
    manifest = json.loads((target / MARKER).read_text())
    assert manifest["files"] == ["other.md"] and manifest["dirs"] == ["figures"]  # kept: holds a user file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_a_new_folder_gets_a_normal_mode_not_the_staging_folders_700(tmp_path):
    mask = os.umask(0o022)
    try:
        with staged_folder(tmp_path / "new") as staging:
            (staging / "x.md").write_text("x")
    finally:
        os.umask(mask)
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o755


def test_a_file_that_would_land_on_a_users_file_is_refused_and_nothing_changes(tmp_path):
    target = tmp_path / "report"
    with staged_folder(target) as staging:
        (staging / "a.md").write_text("ours")
    (target / "b.md").write_text("the user's b")
    with pytest.raises(ForeignOutputFolderError, match="b.md"):
        with staged_folder(target) as staging:
            (staging / "b.md").write_text("ours now?")
    assert (target / "a.md").read_text() == "ours" and (target / "b.md").read_text() == "the user's b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


@pytest.mark.parametrize("files", [["../outside.txt"], ["/etc/passwd"], "not a list", [3]])
def test_a_planted_or_old_marker_deletes_nothing(tmp_path, files):
    (tmp_path / "outside.txt").write_text("keep")
    target = tmp_path / "report"
    target.mkdir()
    (target / "keep.md").write_text("keep")
    (target / MARKER).write_text(json.dumps({"written_by": "fhn_automl", "files": files}))
    with pytest.raises(ForeignOutputFolderError, match=MARKER):
        with staged_folder(target) as staging:
            (staging / "x.md").write_text("x")
    assert (tmp_path / "outside.txt").read_text() == "keep" and (target / "keep.md").read_text() == "keep"


def test_bench_out_dot_twice_keeps_a_file_added_between(tmp_path, monkeypatch):
    """The issue's reproduction, with the timing itself replaced by a file write (speed is not tested here)."""
    import fhn_automl.bench as bench

    monkeypatch.setattr(bench, "_run_benchmark",
                        lambda args, problem, device, staging: (staging / "benchmark.md").write_text("r"))
    monkeypatch.setattr(bench, "set_cpu_threads", lambda threads: None)
    folder = tmp_path / "cwd"
    folder.mkdir()
    os.chmod(folder, 0o755)
    monkeypatch.chdir(folder)
    assert bench.main(["--out", ".", "--device", "cpu"]) == 0
    (folder / "notes.txt").write_text("my notes")
    assert bench.main(["--out", ".", "--device", "cpu"]) == 0
    assert (folder / "notes.txt").read_text() == "my notes"
    assert sorted(p.name for p in folder.iterdir()) == sorted([MARKER, "benchmark.md", "notes.txt"])
    assert folder.stat().st_mode & 0o777 == 0o755
