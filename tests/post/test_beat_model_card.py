"""Issue 22: a beat problem's registered version and pulled card carry its physiology metrics, the output
units and what the inputs are (scale factors of named parameters); FitzHugh-Nagumo cards are unchanged."""

from __future__ import annotations

import pytest

from fhn_automl.learning.physiology import PHYSIOLOGY_METRICS, VOLTAGE_METRICS
from fhn_automl.post.registry import card_markdown, model_card, physiology_tags

METRICS = {f"final_full_val_{name}": float(i) + 0.5 for i, name in enumerate(PHYSIOLOGY_METRICS)}
BASE_TAGS = {"fhn_automl.val_mean_err": "2.5", "fhn_automl.val_max_err": "70.0", "fhn_automl.neurons": "64",
             "fhn_automl.macs": "2000", "fhn_automl.latency_s_per_point": "1e-7"}


def _beat_spec() -> dict:
    scales = ("gKr_scale", "gKs_scale", "gCaL_scale", "gNa_scale")
    return {"problem": "tp06_beat", "kind": "ddnn", "layers": "tanh-32,tanh-32", "inputs": ["t", *scales],
            "outputs": ["V"], "ranges": {"t": [0.0, 1000.0], **{s: [0.5, 2.0] for s in scales}}}


def test_physiology_tags_only_for_beat_problems():
    tags = physiology_tags("tp06_beat", {**METRICS, "final_full_val_mean_err": 2.5})
    assert tags == {f"fhn_automl.val_{name}": str(METRICS[f"final_full_val_{name}"]) for name in PHYSIOLOGY_METRICS}
    assert physiology_tags("problem_b_s", METRICS) == {}
    # a run that lacks a figure (logged before it existed) gets no tag for it, not a made-up one
    assert "fhn_automl.val_rest_err" not in physiology_tags("tp06_beat", {"final_full_val_v_rmse": 1.0})


def test_beat_card_has_physiology_units_and_scale_factor_inputs():
    tags = {**BASE_TAGS, **physiology_tags("tp06_beat", METRICS)}
    card = model_card(_beat_spec(), tags, alias="smoke", version="3", problem="tp06_beat")
    inputs = {i["name"]: i for i in card["inputs"]}
    assert inputs["t"]["units"].startswith("ms") and inputs["t"]["range"] == [0.0, 1000.0]
    for name in ("gKr", "gKs", "gCaL", "gNa"):
        assert "scale factor" in inputs[f"{name}_scale"]["units"] and name in inputs[f"{name}_scale"]["units"]
    assert card["outputs"] == [{"name": "V", "units": "mV"}]
    assert "(mV)" in card["validation"]["error_definition"]
    beat = card["beat"]
    assert beat["cell_model"] == "tp06_epi" and beat["scaled_parameters"] == ["gKr", "gKs", "gCaL", "gNa"]
    assert "scale factors of the tp06_epi parameters gKr, gKs, gCaL, gNa" in beat["inputs"]
    physiology = beat["physiology"]
    for name in VOLTAGE_METRICS:
        assert physiology[name] == pytest.approx(METRICS[f"final_full_val_{name}"])
    assert "other_rmse_pct" not in physiology and "other_rmse_pct" not in physiology["units"]  # V its only output
    assert physiology["units"]["v_rmse"] == physiology["units"]["rest_err"] == "mV"
    assert physiology["units"]["apd90_err_pct"] == "%"
    text = card_markdown(card)
    assert "## Physiology on the validation cells" in text and "## Beat of tp06_epi" in text
    assert f"| `apd90_err_pct` | {METRICS['final_full_val_apd90_err_pct']} | % |" in text
    assert "- `V` (mV)" in text and "- `gKr_scale` in [0.5, 2.0] (scale factor of tp06_epi's gKr" in text
    assert "validation error (mean / max of |dV|, mV): 2.5 / 70.0" in text


def test_ms_beat_card_says_its_voltage_is_dimensionless():
    spec = {**_beat_spec(), "problem": "ms_beat",
            "inputs": ["t", "tau_in_scale", "tau_out_scale", "tau_open_scale", "tau_close_scale"]}
    card = model_card(spec, BASE_TAGS, alias="smoke", version="1", problem="ms_beat")
    assert card["outputs"] == [{"name": "V", "units": "dimensionless"}]
    assert card["beat"]["physiology"]["units"]["v_rmse"] == "dimensionless"
    # no physiology tags on the version (registered before they existed): None, not invented figures
    assert card["beat"]["physiology"]["apd90_err_pct"] is None


def test_fhn_card_has_no_beat_section():
    spec = {"problem": "problem_b_s", "kind": "ddnn", "layers": "silu-8", "inputs": ["t", "u0", "w0"],
            "outputs": ["u", "w"], "ranges": {"t": [0.0, 50.0], "u0": [-2.0, 2.0], "w0": [-0.5, 1.5]}}
    card = model_card(spec, BASE_TAGS, alias="pareto", version="1", problem="problem_b_s")
    assert "beat" not in card
    assert card["validation"]["error_definition"].startswith("|u_pred - u_true| + |w_pred - w_true|")
    assert [i["units"] for i in card["inputs"]][1:] == ["dimensionless", "dimensionless"]
    assert "Physiology" not in card_markdown(card)
    assert "validation error (mean / max of |du| + |dw|)" in card_markdown(card)


def test_a_card_with_calcium_carries_its_share_of_range_error():
    spec = {**_beat_spec(), "problem": "tp06_beat_ca", "outputs": ["V", "Ca_i"]}
    tags = {**BASE_TAGS, **physiology_tags("tp06_beat_ca", METRICS)}
    card = model_card(spec, tags, alias="smoke", version="1", problem="tp06_beat_ca")
    assert card["outputs"] == [{"name": "V", "units": "mV"}, {"name": "Ca_i", "units": "mM"}]
    physiology = card["beat"]["physiology"]
    assert physiology["other_rmse_pct"] == pytest.approx(METRICS["final_full_val_other_rmse_pct"])
    assert physiology["units"]["other_rmse_pct"] == "% of the output's range"


def test_an_initial_state_card_names_its_units_and_error_over_trajectories():
    spec = {"problem": "ms_state", "kind": "pinn", "layers": "tanh-8", "inputs": ["t", "u0", "h0"],
            "outputs": ["u", "h"], "ranges": {"t": [0.0, 500.0], "u0": [0.0, 1.0], "h0": [0.0, 1.0]}}
    card = model_card(spec, BASE_TAGS, alias="smoke", version="1", problem="ms_state")
    inputs = {i["name"]: i["units"] for i in card["inputs"]}
    assert inputs == {"t": "ms since the initial state", "u0": "dimensionless (initial value of u)",
                      "h0": "dimensionless (initial value of h)"}
    assert "FHN" not in str(card["inputs"])
    assert card["validation"]["error_definition"].startswith("|u_pred - u_true| + |h_pred - h_true|")
    assert "validation trajectory" in card["validation"]["error_definition"]
    assert "beat" not in card  # no physiology section: not a beat
    assert card["validation"]["point_error"] == "|du| + |dh|, dimensionless, dimensionless"
    assert "mean / max of |du| + |dh|, dimensionless, dimensionless" in card_markdown(card)
