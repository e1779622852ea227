"""Output folders (bench --out, post --out, pull --to): never delete what fhn_automl did not write."""

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
