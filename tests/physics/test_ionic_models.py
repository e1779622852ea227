"""N-state cell models: the seam, its sources, the solvers against each other and a stiff reference,
the physiology metrics, pre-pacing, the datasets and the named errors.

TP06 is expensive to build (~5 s of SymPy) and to compile with numba (~10 s), so it is built once per
session and its runs here are a few tens of milliseconds of model time.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from fhn_automl import data as data_cli
from fhn_automl.physics import ionic_solvers
from fhn_automl.physics.ap_metrics import action_potential_duration, action_potential_metrics
from fhn_automl.physics.cell_models import FitzHughNagumo
from fhn_automl.physics.euler import euler_trajectories
from fhn_automl.physics.ionic_model import ModelFileError, ParameterRangeError, StimulusProtocol, UnknownCellModelError
from fhn_automl.physics.ionic_reference import reference_solution
from fhn_automl.physics.ionic_solvers import UnstableStepError, integrate_cells
from fhn_automl.physics.ionic_sources import resolve_cell_model
from fhn_automl.physics.prepacing import prepace


@pytest.fixture(scope="session")
def tp06():
    return resolve_cell_model("tp06_epi")


@pytest.fixture(scope="session")
def ms():
    return resolve_cell_model("mitchell_schaeffer")


def _myokit_example() -> Path:
    myokit = pytest.importorskip("myokit")
    return Path(myokit.__file__).parent / "_bin" / "example.mmt"


# ------------------------------------------------------------------------------------------ seam


def test_fhn_instance_has_the_cell_models_equations() -> None:
    fhn = resolve_cell_model("fhn")
    rng = np.random.default_rng(0)
    u, w, i_app = rng.uniform(-0.2, 1.1, 50), rng.uniform(0, 0.2, 50), rng.uniform(0, 0.12, 50)
    expected = FitzHughNagumo().rhs(u, w, i_app)
    actual = fhn.rhs([u, w], i_app, fhn.parameter_values())
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=1e-13, atol=1e-15)
    # the N-state Euler reproduces the FHN solver (same step, same current)
    _, Y = integrate_cells(fhn, np.stack([u, w]), dt=0.01, n_steps=500, save_every=50, method="euler",
                           protocol=StimulusProtocol(amplitude=0.1, duration=np.inf, period=0.0))
    U, W = euler_trajectories(FitzHughNagumo(), u, w, 0.1, dt=0.01, n_steps=500, save_every=50, backend="numpy",
                              dtype=np.float64)
    np.testing.assert_allclose(Y[:, 0].T, U, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(Y[:, 1].T, W, rtol=1e-11, atol=1e-12)


def test_rhs_runs_on_torch_tensors_with_gradients(ms) -> None:
    torch = pytest.importorskip("torch")
    y = torch.tensor([[0.05, 0.5], [0.9, 0.2]], dtype=torch.float64, requires_grad=True)
    du, dh = ms.rhs([y[0], y[1]], 0.0, list(ms.parameter_values()), xp=torch)
    reference = ms.rhs([y[0].detach().numpy(), y[1].detach().numpy()], 0.0, ms.parameter_values())
    np.testing.assert_allclose(du.detach().numpy(), reference[0], rtol=1e-14)
    du.sum().backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


def test_tp06_seam_describes_the_model(tp06) -> None:
    assert tp06.n_states == 19 and tp06.voltage == "u"
    assert tp06.gates == ("m", "h", "j", "xr1", "xr2", "xs", "r", "s", "d", "f", "f2", "fcass", "rr")
    assert {s.name: s.unit for s in tp06.states}["cai"] == "mM"
    assert "finitewave-model-ten-tusscher-panfilov-2006" in tp06.source
    m_cell = resolve_cell_model("tp06_m")
    gks = tp06.parameter_names.index("gKs")
    assert m_cell.parameter_values()[gks] == 0.098 and tp06.parameter_values()[gks] == 0.392
    assert m_cell.digest != tp06.digest


def test_tp06_endo_has_its_own_transient_outward_current(tp06) -> None:
    """Endocardial: gto 0.073 (epicardial 0.294) and the 2004 paper's slower, shifted s gate; the rest as epi."""
    import sympy

    endo = resolve_cell_model("tp06_endo")
    gto = tp06.parameter_names.index("gto")
    assert endo.parameter_values()[gto] == 0.073 and tp06.parameter_values()[gto] == 0.294
    s = tp06.state_names.index("s")
    u = sympy.Symbol("u")

    def ds_dt(model, at):
        return float(model.derivatives[s].subs({u: at, sympy.Symbol("s"): 0.5}))

    # at -40 mV: endo s_inf = 1/(1+exp(-12/5)) = 0.917, tau_s = 1000 exp(-0.729) + 8 = 490.4 ms
    assert ds_dt(endo, -40.0) == pytest.approx((0.9168 - 0.5) / 490.4, rel=1e-3)
    assert ds_dt(tp06, -40.0) != pytest.approx(ds_dt(endo, -40.0), rel=0.1)
    # every other equation is the epicardial one (gto is a parameter symbol in dV/dt, its value differs)
    assert all(endo.derivatives[i] == tp06.derivatives[i] for i in range(tp06.n_states) if i != s)


def test_myokit_mmt_and_cellml_files_load_alike(tmp_path: Path) -> None:
    myokit = pytest.importorskip("myokit")
    import myokit.formats

    example = _myokit_example()
    from_mmt = resolve_cell_model(str(example))
    assert from_mmt.n_states == 8 and from_mmt.voltage == "membrane.V"
    assert set(from_mmt.gates) == {"ina.m", "ina.h", "ina.j", "ica.d", "ica.f", "ik.x"}
    model, protocol, _ = myokit.load(str(example))
    cellml = tmp_path / "lr1991.cellml"
    # with the protocol, the export hard-codes the stimulus as a function of time, as CellML files do
    myokit.formats.exporter("cellml").model(str(cellml), model, protocol)
    from_cellml = resolve_cell_model(str(cellml))
    assert from_cellml.n_states == 8
    assert from_cellml.stimulus.period == from_mmt.stimulus.period == 1000.0
    assert from_cellml.stimulus.duration == from_mmt.stimulus.duration
    # CellML orders the states its own way: compare by name
    assert set(from_cellml.state_names) == set(from_mmt.state_names)
    order = [from_cellml.state_names.index(name) for name in from_mmt.state_names]
    y = from_mmt.default_state()
    np.testing.assert_allclose(from_cellml.default_state()[order], y)
    # the CellML export carries the pacing; the derivatives agree at rest and during a pulse
    for level in (0.0, 1.0):
        a = from_mmt.rhs(y, level * from_mmt.stimulus.amplitude, from_mmt.parameter_values())
        b = from_cellml.rhs(from_cellml.default_state(), level * from_cellml.stimulus.amplitude,
                            from_cellml.parameter_values())
        np.testing.assert_allclose(np.array(b, dtype=float)[order], np.array(a, dtype=float), rtol=1e-10)


def test_bad_model_inputs_raise_named_errors(tmp_path: Path, ms) -> None:
    with pytest.raises(UnknownCellModelError, match="nosuch.*tp06_epi"):
        resolve_cell_model("nosuch")
    with pytest.raises(UnknownCellModelError, match="does not exist"):
        resolve_cell_model(str(tmp_path / "missing.mmt"))
    bad = tmp_path / "bad.mmt"
    bad.write_text("[[model]]\nname: x\ndot(V) = undefined_name\n")
    pytest.importorskip("myokit")
    with pytest.raises(ModelFileError, match="bad.mmt"):
        resolve_cell_model(str(bad))
    with pytest.raises(ParameterRangeError, match="tau_in = 1000.0 is outside"):
        ms.parameter_values({"tau_in": 1000.0})
    with pytest.raises(ParameterRangeError, match="no parameter 'nope'"):
        ms.parameter_values({"nope": 1.0})


def test_cli_errors_exit_2_and_write_nothing(tmp_path: Path, capsys) -> None:
    cases = [["--cell-model", "nosuch"], ["--cell-model", str(tmp_path / "x.cellml")],
             ["--cell-model", "mitchell_schaeffer", "--method", "euler", "--dt", "5", "--beats", "0"],
             ["--cell-model", "mitchell_schaeffer", "--vary", "tau_in,bogus"]]
    for i, arguments in enumerate(cases):
        out = tmp_path / f"out{i}"
        assert data_cli.main([*arguments, "--out", str(out), "--n-trajectories", "2"]) == 2
        assert not out.exists()
        assert "error:" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- solvers


@pytest.mark.parametrize("method", ["euler", "rush_larsen"])
def test_numba_twin_equals_numpy_reference(method: str, ms) -> None:
    _assert_numba_equals_numpy(ms, method, n_steps=3000, dt=0.05, protocol=ms.stimulus)


@pytest.mark.slow  # numba compiles TP06's 19-state step in ~20 s
@pytest.mark.parametrize("method", ["euler", "rush_larsen"])
def test_numba_twin_equals_numpy_reference_tp06(method: str, tp06) -> None:
    # Euler needs dt ~ 1 us on TP06: the sodium activation gate's tau is 1.3 us at rest
    dt = 0.001 if method == "euler" else 0.01
    protocol = StimulusProtocol(amplitude=-52.0, duration=1.0, period=1000.0, start=0.5)
    _assert_numba_equals_numpy(tp06, method, n_steps=int(round(3.0 / dt)), dt=dt, protocol=protocol)


def _assert_numba_equals_numpy(model, method: str, *, n_steps: int, dt: float, protocol) -> None:
    rng = np.random.default_rng(1)
    params = np.repeat(model.parameter_values()[:, None], 5, axis=1)
    params[model.parameter_names.index(model.varied[0])] *= rng.uniform(0.8, 1.2, 5)
    y0 = np.repeat(model.default_state()[:, None], 5, axis=1)
    t, expected = integrate_cells(model, y0, params, dt=dt, n_steps=n_steps, save_every=100, method=method,
                                  backend="numpy", protocol=protocol)
    _, actual = integrate_cells(model, y0, params, dt=dt, n_steps=n_steps, save_every=100, method=method,
                                backend="numba", protocol=protocol)
    assert actual.shape == (n_steps // 100 + 1, model.n_states, 5)
    # per-state scale: concentrations of 1e-4 mM and voltages of 1e1 mV alike
    scale = np.abs(expected).max(axis=(0, 2), keepdims=True)
    np.testing.assert_allclose(actual / scale, expected / scale, rtol=0, atol=1e-10)
    assert expected[:, model.voltage_index].max() > 0.5  # the stimulus fired: an action potential


def test_unstable_step_is_a_named_error(tp06) -> None:
    with pytest.raises(UnstableStepError, match=r"tp06_epi: euler with dt = 0.2 ms is unstable"):
        integrate_cells(tp06, tp06.default_state(), dt=0.2, n_steps=100, method="euler")


def test_rush_larsen_converges_to_the_stiff_reference(ms) -> None:
    t_end = 400.0
    t = np.arange(0.0, t_end + 1e-9, 2.0)
    reference = reference_solution(ms, ms.default_state(), t)
    lsoda = reference_solution(ms, ms.default_state(), t, method="LSODA")
    assert np.abs(lsoda - reference).max() < 1e-5  # two stiff integrators agree
    errors = []
    for dt in (0.25, 0.125, 0.0625):  # steps that land on the pulse's edges
        _, Y = integrate_cells(ms, ms.default_state(), dt=dt, n_steps=int(round(t_end / dt)),
                               save_every=int(round(2.0 / dt)), method="rush_larsen")
        errors.append(np.sqrt(np.mean((Y[:, 0, 0] - reference[:, 0]) ** 2)))
    assert reference[:, 0].max() > 0.8  # an action potential
    assert errors[0] > errors[1] > errors[2] and errors[0] / errors[2] > 3  # first order


@pytest.mark.slow  # shares the TP06 numba compile with the test above
def test_tp06_explicit_solvers_agree_with_the_reference_over_the_upstroke(tp06) -> None:
    t = np.arange(0.0, 30.0 + 1e-9, 0.5)
    reference = reference_solution(tp06, tp06.default_state(), t)
    _, Y = integrate_cells(tp06, tp06.default_state(), dt=0.005, n_steps=6000, save_every=100,
                           method="rush_larsen", backend="numba")
    assert reference[:, 0].max() > 20  # the stimulus at t = 10 ms fired
    assert np.sqrt(np.mean((Y[:, 0, 0] - reference[:, 0]) ** 2)) < 0.5  # mV


@pytest.mark.slow  # three beats of pacing (numba) and one BDF beat: ~10 s after the compile above
def test_tp06_fourth_beat_is_in_the_source_packages_own_range(tp06) -> None:
    """The finitewave TP06 package tests its model on the fourth beat at 1 Hz (three pre-beats): time
    above -70 mV in [280, 320] ms, peak above +20 mV, minimum below -80 mV. Ours, read from the package's
    equations (our stimulus: -52 pA/pF for 1 ms), on the same protocol against the stiff reference."""
    t = np.arange(0.0, 1000.0 + 1e-9, 0.05)
    V = reference_solution(tp06, prepace(tp06, n_beats=3, dt=0.01), t)[:, tp06.state_names.index(tp06.voltage)]
    up = np.flatnonzero((V[:-1] < -70) & (V[1:] >= -70))
    down = np.flatnonzero((V[:-1] > -70) & (V[1:] <= -70))
    assert len(up) == len(down) == 1  # one action potential in the beat
    assert 280 <= t[down[0]] - t[up[0]] <= 320  # measured: 304.1 ms
    assert V.max() > 20 and V.min() < -80  # measured: +40.2 and -85.6 mV


# ---------------------------------------------------------------------------------------- metrics


def _planted_beat(t: np.ndarray) -> np.ndarray:
    """Rest -80 mV; a tanh upstroke centred at 10 ms to +20 mV; plateau; linear fall from 210 ms to rest at
    310 ms. APD90 level -70 mV: up-crossing where tanh hits it, down-crossing at exactly 300 ms."""
    rise = -80 + 50 * (1 + np.tanh((t - 10.0) / 0.5))
    fall = np.clip(20 - (t - 210.0), -80, 20)
    return np.where(t < 100, rise, fall)


def test_planted_trace_has_the_known_apd90() -> None:
    t = np.arange(0.0, 400.0, 0.01)
    V = _planted_beat(t)
    t_up = 10.0 + 0.5 * np.arctanh(10 / 50 - 1)  # -80 + 50 (1 + tanh) = -70
    metrics = action_potential_metrics(np.stack([V, V + 5.0]), t)
    np.testing.assert_allclose(metrics["apd90"], 300.0 - t_up, atol=1e-3)
    np.testing.assert_allclose(metrics["apd50"], 260.0 - 10.0, atol=1e-3)  # level -30: the tanh's centre
    np.testing.assert_allclose(metrics["resting_potential"], [-80.0, -75.0], atol=1e-6)
    np.testing.assert_allclose(metrics["amplitude"], 100.0, atol=1e-3)
    np.testing.assert_allclose(metrics["max_dvdt"], 100.0, rtol=1e-3)  # 50 / 0.5 at the centre
    np.testing.assert_allclose(metrics["triangulation"], metrics["apd90"] - metrics["apd40"])
    flat = action_potential_metrics(np.full((1, t.size), -80.0), t)
    assert np.isnan(flat["apd90"]).all()


def test_apd_agrees_with_ap_features() -> None:
    ap_features = pytest.importorskip("ap_features")
    t = np.arange(0.0, 400.0, 0.1)
    V = _planted_beat(t) + 3 * np.sin(t / 37.0) * (t > 20)
    for percent in (40, 50, 90):
        ours = action_potential_duration(V[None, :], t, percent, rest=np.array([V[0]]))[0]
        theirs = ap_features.apd(percent, V, t, v_r=V[0], use_spline=False)
        # ap_features without its spline takes the samples nearest the level (no interpolation):
        # equal to within the sampling step
        assert ours == pytest.approx(theirs, abs=2 * 0.1), percent


# ---------------------------------------------------------------------------- pre-pacing, datasets


def test_prepacing_is_cached_and_reused(ms, tmp_path: Path, monkeypatch) -> None:
    state = prepace(ms, n_beats=2, period=500.0, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("prepaced-mitchell_schaeffer-*.npz"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("the cached state was not used")

    monkeypatch.setattr("fhn_automl.physics.prepacing.integrate_cells", fail)
    np.testing.assert_array_equal(prepace(ms, n_beats=2, period=500.0, cache_dir=tmp_path), state)
    with pytest.raises(AssertionError):
        prepace(ms, n_beats=3, period=500.0, cache_dir=tmp_path)  # another request: no stale reuse


def test_cell_model_dataset_through_the_cli(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "ms"
    arguments = ["--cell-model", "mitchell_schaeffer", "--out", str(out), "--n-trajectories", "6", "--beats", "1"]
    assert data_cli.main(arguments) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    table = pq.read_table(out / "train.parquet")
    assert table.column_names == ["traj", "t", "tau_in", "tau_out", "tau_open", "tau_close", "u", "h"]
    assert table.num_rows == 3 * 1001 and manifest["files"]["val.parquet"]["rows"] == 3 * 1001
    assert np.nanmax(table.column("u").to_numpy()) > 0.8  # every stored beat is an action potential
    before = {name: (out / name).stat().st_mtime_ns for name in manifest["files"]}
    assert data_cli.main(arguments) == 0  # same request: reused, not rewritten
    assert before == {name: (out / name).stat().st_mtime_ns for name in manifest["files"]}


def test_json_bundle_round_trips_the_model(ms, tmp_path: Path) -> None:
    from fhn_automl.physics.ionic_sources import save_model_bundle

    path = save_model_bundle(ms, tmp_path / "ms.json")
    loaded = resolve_cell_model(str(path))
    assert loaded.digest == ms.digest and loaded.gates == ms.gates and loaded.stimulus == ms.stimulus
    y = np.array([[0.3, 0.9], [0.6, 0.1]])
    np.testing.assert_array_equal(np.array(loaded.rhs(y, 0.1, loaded.parameter_values())),
                                  np.array(ms.rhs(y, 0.1, ms.parameter_values())))
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"format": 1, "name": "x", "derivatives": ["__import__('os')"]}))
    with pytest.raises(ModelFileError, match="broken.json is not a cell-model bundle"):
        resolve_cell_model(str(broken))


@pytest.mark.parametrize("name", ["tp06_epi", "tp06_m", "tp06_endo", "mitchell_schaeffer"])
def test_committed_bundles_equal_the_built_in_models(name: str) -> None:
    """benchmarks/models/*.json (what the GPU hosts run) are the built-ins, not a stale copy."""
    from fhn_automl.physics.ionic_sources import _BUILDERS

    bundle = Path(__file__).resolve().parents[2] / "benchmarks" / "models" / f"{name}.json"
    # built from the source package itself, never from the bundle it is compared with
    assert resolve_cell_model(str(bundle)).digest == _BUILDERS[name]().digest


def test_built_in_model_without_its_source_package_is_the_committed_bundle(monkeypatch) -> None:
    """On a host without the finitewave packages (the lent GPU machines) a built-in name resolves to its
    committed bundle; a name without a bundle keeps the error that names the package to install."""
    from fhn_automl.physics import ionic_sources

    original = ionic_sources._BUILDERS["mitchell_schaeffer"]
    monkeypatch.setattr(ionic_sources.importlib.util, "find_spec", lambda name: None)
    ionic_sources._built_in.cache_clear()
    try:
        from_bundle = resolve_cell_model("mitchell_schaeffer")
        assert "via bundle" in from_bundle.source
        with pytest.raises(ionic_sources.ModelSourceMissingError, match="pip install finitewave-model"):
            original()
        monkeypatch.setattr(ionic_sources, "CHECKOUT_BUNDLES", Path("/nonexistent"))
        ionic_sources._built_in.cache_clear()
        with pytest.raises(UnknownCellModelError, match="pip install finitewave-model"):
            resolve_cell_model("mitchell_schaeffer")
    finally:
        ionic_sources._built_in.cache_clear()
    monkeypatch.undo()
    assert from_bundle.digest == resolve_cell_model("mitchell_schaeffer").digest
