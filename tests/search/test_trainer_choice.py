"""Issue 21 item 9: a one-worker trial of ``executor: train`` opens no torch process group, so no TCPStore
rendezvous listens on every interface; DDP over several workers keeps ``TorchTrainer``."""

from __future__ import annotations

import pytest

pytest.importorskip("ray.train")

from ray.train import BackendConfig  # noqa: E402
from ray.train.torch import TorchConfig, TorchTrainer  # noqa: E402

from fhn_automl.search.trial import trainer_class  # noqa: E402


def _backend(cls: type) -> BackendConfig:
    trainer = cls(lambda: None, scaling_config=None) if cls is TorchTrainer else cls(lambda: None)
    return trainer.backend_config


def test_one_worker_trains_without_a_torch_process_group():
    one, several = trainer_class(1), trainer_class(2)
    assert several is TorchTrainer and isinstance(_backend(several), TorchConfig)
    assert not issubclass(one, TorchTrainer)
    backend = _backend(one)
    assert type(backend) is BackendConfig and not isinstance(backend, TorchConfig)  # no on_start rendezvous
