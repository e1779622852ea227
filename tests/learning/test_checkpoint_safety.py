"""Resume checkpoints load with ``torch.load(weights_only=True)``: a crafted train_state.pt runs no code."""

import numpy as np
import pytest
import torch

from fhn_automl.learning.trainer import STATE_FILE, UnsafeCheckpointError, _plain, train

from .conftest import tiny_config


class _CreatesAFile:
    """Unpickling this calls ``open(path, "w")``: what a crafted checkpoint could do with any callable."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def _crafted_state(folder, payload_path):
    folder.mkdir(parents=True)
    torch.save({"step": 0, "model": {}, "payload": _CreatesAFile(payload_path)}, folder / STATE_FILE)
    return folder


def test_the_payload_is_real_under_a_full_unpickle(tmp_path):
    # guards the test below: the same kind of file does run code when loaded without weights_only
    proof = tmp_path / "created_by_unpickling"
    folder = _crafted_state(tmp_path / "proof", proof)
    torch.load(folder / STATE_FILE, weights_only=False)
    assert proof.exists()


def test_a_crafted_train_state_is_refused_and_runs_nothing(b_s_data, tmp_path):
    pwned = tmp_path / "pwned"
    folder = _crafted_state(tmp_path / "crafted", pwned)
    with pytest.raises(UnsafeCheckpointError, match=STATE_FILE):
        train(tiny_config("problem_b_s", b_s_data, tmp_path / "run", steps=20, val_every=10), checkpoint=folder)
    assert not pwned.exists()


@pytest.mark.parametrize("recipe", ["fast", "paper"])
def test_own_checkpoints_resume_under_weights_only(b_s_data, tmp_path, recipe):
    # both schedulers (cosine LambdaLR, ReduceLROnPlateau), Adam state, the generator state and the
    # history must be tensors and plain Python values
    config = tiny_config("problem_b_s", b_s_data, tmp_path / "first", steps=40, val_every=20, recipe=recipe)
    train(config)
    pickle_free = torch.load(tmp_path / "first" / "checkpoint" / STATE_FILE, weights_only=True)
    assert pickle_free["step"] == 40
    resumed = train({**config, "steps": 60, "out_dir": str(tmp_path / "second")},
                    checkpoint=tmp_path / "first" / "checkpoint")
    assert resumed["status"] == "finished" and resumed["step"] == 60


def test_numpy_values_in_the_state_are_stored_as_python_values(tmp_path):
    state = _plain({"history": [{"val_mean_err": np.float64(1.5), "step": np.int64(3)}], "box": np.zeros(2)})
    torch.save(state, tmp_path / STATE_FILE)
    assert torch.load(tmp_path / STATE_FILE, weights_only=True) == {
        "history": [{"val_mean_err": 1.5, "step": 3}], "box": [0.0, 0.0]}


def test_a_crafted_pack_state_is_refused_and_runs_nothing(b_s_data, tmp_path):
    """The packed loop reads its checkpoint through the same rule (learning.checkpoints): before issue 15 it
    let a raw UnpicklingError escape where train raised UnsafeCheckpointError."""
    from fhn_automl.learning.packed import PACK_STATE_FILE, train_pack

    pwned = tmp_path / "pwned"
    folder = tmp_path / "crafted"
    folder.mkdir()
    torch.save({"step": 0, "payload": _CreatesAFile(pwned)}, folder / PACK_STATE_FILE)
    configs = [{**tiny_config("problem_b_s", b_s_data, tmp_path / "run", steps=20, val_every=10), "out_dir": None}]
    with pytest.raises(UnsafeCheckpointError, match=PACK_STATE_FILE):
        train_pack(configs, out_dir=tmp_path / "pack", checkpoint=folder)
    assert not pwned.exists()


@pytest.mark.parametrize("loop", ["train", "train_pack"])
def test_missing_and_truncated_checkpoints_are_named(loop, b_s_data, tmp_path):
    from fhn_automl.learning.checkpoints import CheckpointError
    from fhn_automl.learning.packed import PACK_STATE_FILE, train_pack

    config = tiny_config("problem_b_s", b_s_data, tmp_path / "run", steps=20, val_every=10)
    name = STATE_FILE if loop == "train" else PACK_STATE_FILE

    def resume(folder):
        if loop == "train":
            return train(config, checkpoint=folder)
        return train_pack([{**config, "out_dir": None}], out_dir=tmp_path / "pack", checkpoint=folder)

    with pytest.raises(CheckpointError, match=f"no {name}"):
        resume(tmp_path / "missing")
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    (truncated / name).write_bytes(b"PK\x03\x04")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        resume(truncated)
