"""Issue 17 item 5: live per-trial lines (step, validation error, steps/s, ETA) at a bounded rate."""

from types import SimpleNamespace

from fhn_automl.search import monitor as monitor_module
from fhn_automl.search.monitor import SearchMonitor


class _Tracker:
    """What SearchMonitor needs of a SearchTracker for results (nothing is written)."""

    closed: dict = {}

    def log_result(self, *args, **kwargs) -> None:
        pass


def test_a_trial_prints_step_error_rate_and_eta_at_most_every_interval(monkeypatch, capsys):
    clock = {"now": 100.0}
    monkeypatch.setattr(monitor_module.time, "perf_counter", lambda: clock["now"])
    spec = SimpleNamespace(name="t0000-main-b_s-ddnn-silu8-bs256-s0", steps=2_000)
    monitor = SearchMonitor(_Tracker(), key="live-progress-test", total=1, metric="val_mean_err", quiet=False,
                            trial_lookup=lambda config: spec, progress_every_s=10.0)
    trial = SimpleNamespace(trial_id="a", config={})
    try:
        for t, step, error in ((101.0, 500, 4e-2), (105.0, 1000, 2e-2), (112.0, 1500, 1e-2)):
            clock["now"] = t
            monitor.on_trial_result(0, [], trial, {"step": step, "val_mean_err": error, "step_time_ms": 2.0})
        lines = [line for line in capsys.readouterr().out.splitlines() if spec.name in line]
    finally:
        monitor.detach()
    # the first result (rate from the trainer's step time), nothing 4 s later, then the third result
    # (rate measured on the driver between results: 500 steps in 7 s), with the ETA of what is left
    assert len(lines) == 2, lines
    assert "step 500/2000" in lines[0] and "val_mean_err 4.000e-02" in lines[0] and "500 steps/s" in lines[0]
    assert "ETA 3 s" in lines[0]
    assert "step 1500/2000" in lines[1] and "val_mean_err 1.000e-02" in lines[1] and "71 steps/s" in lines[1]
    assert "ETA 7 s" in lines[1]


def test_quiet_prints_no_trial_lines(capsys):
    spec = SimpleNamespace(name="t0001", steps=100)
    monitor = SearchMonitor(_Tracker(), key="live-progress-quiet", total=1, metric="val_mean_err", quiet=True,
                            trial_lookup=lambda config: spec)
    try:
        monitor.on_trial_result(0, [], SimpleNamespace(trial_id="b", config={}), {"step": 10, "val_mean_err": 0.1})
    finally:
        monitor.detach()
    assert "t0001" not in capsys.readouterr().out
