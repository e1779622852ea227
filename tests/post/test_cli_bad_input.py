"""bench and post answer bad input with a named error and exit 2, never a traceback (issue 8, item 9)."""

import pytest

from fhn_automl.bench import main as bench_main
from fhn_automl.post.__main__ import main as post_main


def _exit_code(main, argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own errors
        return exc.code


BENCH_CASES = [
    (["--problem", "problem_z"], "--problem"),
    (["--n", "0"], "--n"),
    (["--n", "-5"], "--n"),
    (["--n", "many"], "--n"),
    (["--n-ref", "0"], "--n-ref"),
    (["--repeats", "0"], "--repeats"),
    (["--warmup", "-1"], "--warmup"),
    (["--dts", "0"], "--dts"),
    (["--dts", "-0.1"], "--dts"),
    (["--dts", "0.3"], "--dts 0.3: must divide"),
    (["--threads", "0"], "--threads"),
    (["--device", "gpu0"], "--device"),
    (["--precision", "fp16", "--device", "cpu"], "fp16"),
    (["--backend", "tensorrt", "--device", "cpu"], "tensorrt backend needs a CUDA device"),
    (["--model-dir", "/no/such/model"], "--model-dir /no/such/model"),
    (["--sweep", "--widths", "0"], "--widths"),
    (["--sweep", "--depths", "-1"], "--depths"),
    (["--sweep", "--max-models", "0"], "--max-models"),
    (["--sweep", "--backends", "onnx"], "--backends"),
    (["--sweep", "--tune-points", "0"], "--tune-points"),
]


@pytest.mark.parametrize(("argv", "words"), BENCH_CASES, ids=[" ".join(a) for a, _ in BENCH_CASES])
def test_bench_bad_input(argv, words, tmp_path, capsys):
    assert _exit_code(bench_main, [*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


POST_CASES = [
    (["--bench-n", "0"], "--bench-n"),
    (["--n-ref", "-3"], "--n-ref"),
    (["--repeats", "0"], "--repeats"),
    (["--tune-points", "x"], "--tune-points"),
    (["--threads", "0"], "--threads"),
    (["--time-rtol", "-0.1"], "--time-rtol"),
    (["--device", "tpu"], "--device"),
    (["--budget", "huge"], "--budget"),
    (["--backend", "onnx"], "--backend"),
    (["--precision", "fp16", "--device", "cpu"], "fp16"),
]


@pytest.mark.parametrize(("argv", "words"), POST_CASES, ids=[" ".join(a) for a, _ in POST_CASES])
def test_post_bad_input(argv, words, tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert _exit_code(post_main, ["some-experiment", "--tracking-uri", uri, "--out", str(tmp_path / "out"),
                                  *argv]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", [["fhn_automl.post", "some-experiment"], ["fhn_automl.pull", "problem_b_s", "--to", "out"],
                                     ["fhn_automl.serve", "problem_b_s"]])
def test_readers_without_a_store_write_nothing(command, tmp_path, monkeypatch):
    """A reader pointed at a folder with no MLflow store says so (exit 2) and leaves no empty mlruns/ behind."""
    import subprocess
    import sys

    env = {k: v for k, v in __import__("os").environ.items() if k != "MLFLOW_TRACKING_URI"}
    run = subprocess.run([sys.executable, "-m", *command], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert list(tmp_path.iterdir()) == []
