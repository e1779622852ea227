"""train() under an initialised torch.distributed process group (gloo, 2 CPU ranks): DDP, per-rank
batches, checkpoint folder only on rank 0, report on every rank, identical weights at the end."""

import json
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.learning.conftest import tiny_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, data_dir: str, out_root: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from fhn_automl.learning import train

    reports = []
    try:
        result = train(tiny_config("problem_b_s", data_dir, f"{out_root}/rank{rank}", kind="pinn"),
                       lambda m, folder: reports.append([m["step"], folder]))
        weights = [p.detach().sum().item() for p in torch.load(
            f"{out_root}/rank0/checkpoint/train_state.pt", weights_only=True)["model"].values()] if rank == 0 else []
        with open(f"{out_root}/rank{rank}.json", "w") as handle:
            json.dump({"reports": reports, "status": result["status"], "val": result["val_mean_err"],
                       "weights": weights}, handle)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_ranks(b_s_data, tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(b_s_data), str(tmp_path)), nprocs=2, join=True)
    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    rank1 = json.loads((tmp_path / "rank1.json").read_text())
    assert rank0["status"] == rank1["status"] == "finished"
    assert [step for step, _ in rank0["reports"]] == [step for step, _ in rank1["reports"]] == [100, 200]
    assert all(folder is not None for _, folder in rank0["reports"])
    assert all(folder is None for _, folder in rank1["reports"])
    assert rank0["val"] == rank1["val"]  # DDP keeps the replicas identical
    assert not (tmp_path / "rank1" / "checkpoint").exists()
