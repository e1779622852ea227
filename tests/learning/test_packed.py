"""Packed training (learning.packed): a pack member is the run train() makes with its config, to float
tolerance; padding stays zero; in-pack successive halving; resume; configs that cannot share a pack."""

import json

import pytest
import torch

from fhn_automl.learning import load_model, load_torchscript, train
from fhn_automl.learning.packed import (PACK_STATE_FILE, Halving, PackError, check_pack, draw_ahead_steps,
                                        plan_packs, train_pack)
from tests.learning.conftest import tiny_config

#: Different widths (padding), activations (incl. sigmoid, f(0) != 0, on a padded layer), seeds and one lr.
MEMBERS = [("silu-16,tanh-32", 0, {}), ("tanh-8,silu-8", 1, {}), ("elu-32,sigmoid-4", 2, {"lr": 3e-3}),
           ("silu-32,silu-32", 3, {})]
#: float32: the batched matmuls may sum in another order than nn.Linear's addmm, so a member agrees with
#: its single run to ~1e-7 relative per step (measured: <= 3e-7 after 200 steps), not bit for bit.
RTOL = 1e-5


def _configs(data, tmp_path, **overrides):
    return [tiny_config("problem_b_s", data, tmp_path / f"single_{seed}", layers=layers, seed=seed,
                        write_torchscript=False, val_max_points=300, **{**extra, **overrides})
            for layers, seed, extra in MEMBERS]


def _history(folder):
    return json.loads((folder / "metrics.json").read_text())["history"]


@pytest.mark.parametrize("variant", [
    {"val_every": 1, "steps": 100},  # ddnn, fast recipe (fused Adam, cosine lr): every step's loss compared
    {"kind": "pinn", "recipe": "paper", "physics_batch_size": 64, "val_every": 25},  # Adam, plateau lr
])
def test_member_equals_its_single_run(b_s_data, tmp_path, variant):
    configs = _configs(b_s_data, tmp_path, **variant)
    packed = train_pack([{**c, "out_dir": None} for c in configs], out_dir=tmp_path / "pack")
    for i, config in enumerate(configs):
        single = train(config)
        member = packed["members"][f"m{i}"]
        assert member["status"] == single["status"] == "finished"
        mine, theirs = _history(tmp_path / "pack" / "members" / f"m{i}"), _history(tmp_path / f"single_{i}")
        assert [r["step"] for r in mine] == [r["step"] for r in theirs]
        for key in ("loss", "loss_data", "loss_physics", "loss_ic", "val_mean_err", "val_max_err", "lr"):
            if key in theirs[0]:
                assert [r[key] for r in mine] == pytest.approx([r[key] for r in theirs], rel=RTOL), (i, key)
        assert member["final_full_val_mean_err"] == pytest.approx(single["final_full_val_mean_err"], rel=RTOL)
        assert member["best_step"] == single["best_step"]
        ours, reference = load_model(member["model_dir"]), load_model(single["model_dir"])
        for name, tensor in reference.state_dict().items():
            assert torch.allclose(ours.state_dict()[name], tensor, rtol=RTOL, atol=1e-6), (i, name)


def test_padding_stays_zero_and_models_are_complete(b_s_data, tmp_path):
    # member 1 is padded in every layer, member 2's sigmoid layer (sigmoid(0) = 0.5) too
    configs = [{**c, "out_dir": None, "steps": 100, "val_every": 50} for c in _configs(b_s_data, tmp_path)]
    configs[2]["write_torchscript"] = True
    result = train_pack(configs, out_dir=tmp_path / "pack")
    assert result["model_steps"] == 4 * 100 and result["model_steps_saved"] == 0
    state = torch.load(tmp_path / "pack" / "checkpoint" / PACK_STATE_FILE, weights_only=True)
    weights, biases = state["parameters"][0::2], state["parameters"][1::2]
    padded_entries = 0
    for row, index in enumerate(state["rows"]):
        sizes = [3, *(int(layer.split("-")[1]) for layer in MEMBERS[index][0].split(",")), 2]
        for layer, (weight, bias) in enumerate(zip(weights, biases)):
            fan_in, fan_out = sizes[layer], sizes[layer + 1]
            padded_entries += weight[row].numel() - fan_in * fan_out + bias[row].numel() - fan_out
            assert weight[row, fan_out:, :].abs().sum().item() == 0.0
            assert weight[row, :, fan_in:].abs().sum().item() == 0.0
            assert bias[row, fan_out:].abs().sum().item() == 0.0
    assert padded_entries > 0
    folder = tmp_path / "pack" / "members" / "m2" / "model"
    assert {"spec.json", "weights.pt", "model.ts"} <= {p.name for p in folder.iterdir()}
    x = torch.rand(20, 3) * torch.tensor([50.0, 1.0, 0.18])
    with torch.no_grad():
        assert torch.allclose(load_torchscript(folder)(x), load_model(folder)(x), atol=1e-6)


def test_successive_halving_keeps_the_best_and_compacts(b_s_data, tmp_path):
    layers = ["silu-8,silu-8", "tanh-16,tanh-16", "silu-32,tanh-8", "elu-8,silu-16", "tanh-8,tanh-8",
              "silu-16,silu-16"]
    configs = [tiny_config("problem_b_s", b_s_data, tmp_path / f"s{i}", layers=layer, seed=i, steps=300,
                           val_every=50, write_torchscript=False, val_max_points=300)
               for i, layer in enumerate(layers)]
    rounds = []
    result = train_pack([{**c, "out_dir": None} for c in configs], lambda records, folder: rounds.append(records),
                        out_dir=tmp_path / "pack", halving=Halving(grace_steps=50, reduction_factor=3))
    at_50 = rounds[0]
    ranked = sorted(at_50, key=lambda name: at_50[name]["val_mean_err"])
    assert [at_50[name]["status"] for name in ranked] == ["running"] * 2 + ["stopped_early"] * 4
    at_150 = rounds[2]
    assert sorted(at_150) == sorted(ranked[:2]) and sorted(r["status"] for r in at_150.values()) == [
        "running", "stopped_early"]
    members = result["members"]
    assert sorted(m["status"] for m in members.values()) == ["finished"] + ["stopped_early"] * 5
    assert result["model_steps"] == 6 * 50 + 2 * 100 + 1 * 150
    assert result["model_steps_saved"] == 4 * 250 + 1 * 150
    for name, member in members.items():
        assert load_model(member["model_dir"]) is not None and member["model_selection"] in ("final", "best_subset")
    # the survivor, trained in a pack that shrank twice, is still its single run
    survivor = next(name for name, m in members.items() if m["status"] == "finished")
    index = int(survivor[1:])
    single = train(configs[index])
    assert [r["loss"] for r in _history(tmp_path / "pack" / "members" / survivor)] == pytest.approx(
        [r["loss"] for r in _history(tmp_path / f"s{index}")], rel=RTOL)
    assert members[survivor]["final_full_val_mean_err"] == pytest.approx(single["final_full_val_mean_err"], rel=RTOL)


@pytest.mark.parametrize("draw_ahead", [1, 25])
def test_resume_continues_the_pack_exactly(b_s_data, tmp_path, draw_ahead):
    configs = [{**c, "out_dir": None, "steps": 200, "val_every": 50} for c in _configs(b_s_data, tmp_path)]
    halving = Halving(grace_steps=50, reduction_factor=2)
    whole = train_pack(configs, out_dir=tmp_path / "whole", halving=halving, draw_ahead=draw_ahead)
    seen = []

    def crash_at_100(records, folder):
        seen.append(next(iter(records.values()))["step"])
        if seen[-1] == 100:
            raise RuntimeError("node lost")

    with pytest.raises(RuntimeError, match="node lost"):
        train_pack(configs, crash_at_100, out_dir=tmp_path / "first", halving=halving, draw_ahead=draw_ahead)
    resumed = train_pack(configs, out_dir=tmp_path / "second", halving=halving,
                         checkpoint=tmp_path / "first" / "checkpoint", draw_ahead=draw_ahead)
    assert resumed["model_steps"] == whole["model_steps"] and resumed["model_steps_saved"] == whole["model_steps_saved"]
    for name, member in whole["members"].items():
        again = resumed["members"][name]
        assert again["status"] == member["status"]
        assert again["loss"] == member["loss"] and again["best_val_mean_err"] == member["best_val_mean_err"]
        curve = [(r["step"], r["loss"], r["val_mean_err"], r["status"])
                 for r in _history(tmp_path / "second" / "members" / name)]
        assert curve == [(r["step"], r["loss"], r["val_mean_err"], r["status"])
                         for r in _history(tmp_path / "whole" / "members" / name)]


def test_configs_that_cannot_share_a_pack_are_refused_by_name(b_s_data, tmp_path):
    base = tiny_config("problem_b_s", b_s_data, tmp_path)
    with pytest.raises(PackError, match="batch_size"):
        check_pack([base, {**base, "batch_size": 64}])
    with pytest.raises(PackError, match="same depth"):
        check_pack([base, {**base, "layers": "silu-8"}])
    with pytest.raises(PackError, match="split windows"):
        check_pack([{**base, "window": "split:0,10,50"}])
    assert check_pack([base, {**base, "layers": "tanh-64,elu-8", "seed": 5, "lr": 1e-3}])


def test_plan_packs_groups_compatible_configs_by_size():
    base = {"problem": "problem_b_s"}
    configs = ([{**base, "layers": f"silu-{w},silu-{w}"} for w in (64, 8, 32, 8, 64)]
               + [{**base, "layers": "silu-8,silu-8,silu-8"}] + [{**base, "layers": "silu-8,silu-8", "kind": "pinn"}])
    packs = plan_packs(configs, pack_size=2)
    assert sorted(i for pack in packs for i in pack) == list(range(7))
    assert [1, 3] in packs and [5] in packs and [6] in packs  # narrow ones together; depth and kind apart
    assert all(len(pack) <= 2 for pack in packs)
    with pytest.raises(PackError, match="pack_size"):
        plan_packs(configs, 0)


@pytest.mark.parametrize("problem, extra", [("problem_b_c_iter", {"kind": "iter"}),
                                            ("problem_b_s", {"window": "chained:10"}),
                                            ("problem_b_s", {"extra_region": "unstable_equilibrium"})])
def test_iterator_chained_and_extra_region_members_equal_their_single_runs(request, tmp_path, problem, extra):
    data = request.getfixturevalue("iter_data" if problem == "problem_b_c_iter" else "b_s_data")
    configs = [tiny_config(problem, data, tmp_path / f"single_{i}", layers=layers, seed=i, steps=100, val_every=50,
                           write_torchscript=False, val_max_points=300, **extra)
               for i, layers in enumerate(["silu-16,tanh-8", "tanh-8,elu-16"])]
    packed = train_pack([{**c, "out_dir": None} for c in configs], out_dir=tmp_path / "pack")
    for i, config in enumerate(configs):
        single = train(config)
        member = packed["members"][f"m{i}"]
        for key in ("loss", "val_mean_err", "final_full_val_mean_err"):
            assert member[key] == pytest.approx(single[key], rel=RTOL), (i, key)


def test_draw_ahead_keeps_a_member_independent_of_its_pack(b_s_data, tmp_path):
    """Drawing ahead keeps each member on its own generator: alone or beside others, the member trains
    the same, and it learns. On the CPU the generator's stream is sequential, so drawing 20 steps at
    once gives the step-by-step numbers (on CUDA, Philox offsets make them other numbers)."""
    configs = [{**c, "out_dir": None, "steps": 200, "val_every": 100} for c in _configs(b_s_data, tmp_path)]
    together = train_pack(configs, out_dir=tmp_path / "together", draw_ahead=20)
    alone = train_pack(configs[:1], out_dir=tmp_path / "alone", draw_ahead=20)
    exact = train_pack(configs[:1], out_dir=tmp_path / "exact", draw_ahead=1)
    first, single, stepwise = together["members"]["m0"], alone["members"]["m0"], exact["members"]["m0"]
    assert single["loss"] == pytest.approx(first["loss"], rel=RTOL)
    assert single["best_val_mean_err"] == pytest.approx(first["best_val_mean_err"], rel=RTOL)
    assert single["loss"] == pytest.approx(stepwise["loss"], rel=RTOL)
    history = _history(tmp_path / "alone" / "members" / "m0")
    assert history[-1]["loss"] < history[0]["loss"]


@pytest.mark.parametrize("requested, val_every, expected", [(1, 50, 1), (50, 500, 50), (64, 500, 50),
                                                             (64, 30, 10), (7, 7, 1), (1000, 100, 100)])
def test_draw_ahead_divides_the_checkpoint_steps(requested, val_every, expected):
    assert draw_ahead_steps(requested, val_every) == expected


@pytest.mark.parametrize("bad", [0, -3, "fast", 2.5])
def test_bad_draw_ahead_is_refused_by_name(b_s_data, tmp_path, bad):
    with pytest.raises(PackError, match="draw_ahead"):
        train_pack([{**c, "out_dir": None} for c in _configs(b_s_data, tmp_path)[:1]], out_dir=tmp_path / "p",
                   draw_ahead=bad)
