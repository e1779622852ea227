"""A model file changed in the artifact store after logging is refused by name (issue 21 item 3).

The attack: ``model.ts`` (TorchScript, runs whatever it holds) swapped for one that returns 42 was
pulled under a card claiming the logged error. The tracking store records each trial's file digests
when the model is logged; the post-stage, ``pull``, ``bench --registered`` and ``bench --model-dir`` of
a pulled folder check them before loading.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import pytest

from fhn_automl.post.errors import ModelDigestError


@contextmanager
def _swapped(root: Path, name: str):
    """Every copy of ``name`` in the store's artifacts replaced by other bytes, put back afterwards (the
    store is the session's shared fixture)."""
    originals = {path: path.read_bytes() for path in (root / "mlruns" / "artifacts").rglob(name)}
    assert originals, f"no {name} in the store"
    try:
        for path in originals:
            path.write_bytes(b"a TorchScript archive that returns 42" if name == "model.ts" else b"\x80\x04N.")
        yield
    finally:
        for path, data in originals.items():
            path.write_bytes(data)


@pytest.mark.parametrize("name", ["model.ts", "weights.pt"])
def test_pull_refuses_a_swapped_file_by_name(post_result, tiny_experiment, tmp_path, name, capsys):
    from fhn_automl.pull import main as pull_main

    with _swapped(tiny_experiment["root"], name):
        assert pull_main(["problem_b_s", "--to", str(tmp_path / "pulled"),
                          "--tracking-uri", tiny_experiment["uri"]]) == 2
    err = capsys.readouterr().err
    assert name in err and "SHA-256" in err and "changed after logging" in err
    assert not (tmp_path / "pulled").exists() and list(tmp_path.iterdir()) == []  # nothing written


def test_the_post_stage_refuses_a_swapped_model(tiny_experiment, tmp_path):
    from fhn_automl.post import run_post_stage

    from .conftest import FAST_POST

    with _swapped(tiny_experiment["root"], "model.ts"):
        with pytest.raises(ModelDigestError, match=r"model\.ts has SHA-256"):
            run_post_stage(tiny_experiment["experiment"], tiny_experiment["uri"], tmp_path / "report",
                           register=False, **FAST_POST)
    assert not (tmp_path / "report").exists()


def test_bench_refuses_a_registered_or_pulled_model_changed_since(post_result, tiny_experiment, tmp_path, capsys):
    from fhn_automl.bench import main as bench_main
    from fhn_automl.post.registry import pull_models

    common = ["--n", "200", "--n-ref", "8", "--backend", "eager", "--device", "cpu", "--repeats", "1",
              "--warmup", "0", "--dts", "0.1", "--tune-points", "4096"]
    with _swapped(tiny_experiment["root"], "weights.pt"):
        assert bench_main(["--registered", "--tracking-uri", tiny_experiment["uri"], "--out",
                           str(tmp_path / "b1"), *common]) == 2
    assert "weights.pt" in capsys.readouterr().err
    folder = pull_models("problem_b_s", tmp_path / "pulled", tracking_uri=tiny_experiment["uri"])[0]
    (folder / "weights.pt").write_bytes((folder / "weights.pt").read_bytes() + b"\0")
    assert bench_main(["--model-dir", str(folder), "--out", str(tmp_path / "b2"), *common]) == 2
    assert "model_card.json" in capsys.readouterr().err
    assert not (tmp_path / "b1").exists() and not (tmp_path / "b2").exists()


def test_verify_names_a_missing_file(tmp_path):
    from fhn_automl.learning.digests import file_digests
    from fhn_automl.post.integrity import verify_model_files

    (tmp_path / "spec.json").write_text("{}")
    expected = {**file_digests(tmp_path), "weights.pt": "1" * 64}
    with pytest.raises(ModelDigestError, match="weights.pt is missing"):
        verify_model_files(tmp_path, expected, what="run x")
