"""Work-precision of the N-state cell-model solvers against the stiff reference, and the reference's biomarkers.

    python benchmarks/cell_solvers.py --cell-model tp06_epi --beats 500 --cells 16 [--device cpu|cuda]

1. pre-pace the model ``--beats`` beats at its cycle length (Rush-Larsen, dt 0.01; cached in
   benchmarks/.cache);
2. solve the next beat with the stiff reference (SciPy BDF, rtol 1e-8, atol 1e-10, float64), sampled
   every 0.01 ms, and print its biomarkers (``physics.ap_metrics``);
3. for each method (forward Euler, Rush-Larsen) and dt of the sweep: solve the same beat for ``--cells``
   identical cells on the chosen backend (numba on ``cpu``; the generated CUDA kernel on ``cuda``), after
   one untimed warm-up run that compiles, and report the RMS error of V against the reference (mV, on a
   0.1 ms grid), the APD90 error (%), and the wall time per beat per cell. An unstable dt is reported as
   such.

``--export-bundle PATH`` writes the resolved model as a JSON bundle instead (``ionic_sources``), so a GPU
host that has SymPy but neither Myokit nor the finitewave packages can run ``--cell-model PATH``.
Figures go to stdout as Markdown rows (paste into benchmarks/RESULTS.md) and, with ``--json``, to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from fhn_automl.physics.ap_metrics import action_potential_metrics
from fhn_automl.physics.ionic_reference import reference_solution
from fhn_automl.physics.ionic_solvers import UnstableStepError, integrate_cells
from fhn_automl.physics.ionic_sources import resolve_cell_model, save_model_bundle
from fhn_automl.physics.prepacing import prepace

SAMPLE = 0.1  # ms between compared samples
SWEEPS = {"euler": (0.0005, 0.001, 0.002, 0.005), "rush_larsen": (0.005, 0.01, 0.02, 0.05, 0.1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell-model", default="tp06_epi")
    parser.add_argument("--beats", type=int, default=500, help="pre-pacing beats")
    parser.add_argument("--cells", type=int, default=16,
                        help="identical cells per timed run (GPU: 16384 fills an H200's SMs; every saved state of "
                             "every cell stays in GPU memory: n_saved x n_states x cells x 8 bytes)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--sample", type=float, default=SAMPLE, help="ms between compared samples")
    parser.add_argument("--json", default=None, help="also write the figures here")
    parser.add_argument("--export-bundle", default=None, help="write the model as a JSON bundle and stop")
    parser.add_argument("--scale-dt", type=float, default=1.0,
                        help="multiply the dt sweep (Mitchell-Schaeffer takes ~10x larger steps)")
    args = parser.parse_args(argv)
    model = resolve_cell_model(args.cell_model)
    if args.export_bundle:
        print(save_model_bundle(model, args.export_bundle))
        return 0
    backend = "numba" if args.device == "cpu" else "cuda"
    cache = Path(__file__).with_name(".cache")
    started = time.perf_counter()
    state = prepace(model, n_beats=args.beats, dt=0.01, method="rush_larsen",
                    backend="numba" if args.device == "cpu" else "cuda", cache_dir=cache)
    print(f"# {model.name}: {args.beats} beats of pre-pacing in {time.perf_counter() - started:.1f} s "
          f"({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, {platform.processor() or platform.machine()})")
    period = model.stimulus.period
    started = time.perf_counter()
    fine = np.round(np.arange(0.0, period + 1e-9, 0.01), 10)
    reference = reference_solution(model, state, fine)
    print(f"# reference (BDF rtol 1e-8) beat in {time.perf_counter() - started:.1f} s")
    v = model.voltage_index
    ref_metrics = {k: float(x[0]) for k, x in action_potential_metrics(reference[None, :, v], fine).items()}
    print("| biomarker | reference |")
    print("|---|---|")
    for key, value in ref_metrics.items():
        print(f"| {key} | {value:.4g} |")
    stride = int(round(args.sample / 0.01))
    coarse_t, coarse_ref = fine[::stride], reference[::stride, v]
    coarse_ref_metrics = action_potential_metrics(coarse_ref[None, :], coarse_t)
    rows = []
    print("| method | dt (ms) | V RMSE (mV) | APD90 error (%) | time per beat per cell (ms) | backend |")
    print("|---|---|---|---|---|---|")
    for method, dts in SWEEPS.items():
        for dt in (d * args.scale_dt for d in dts):
            n_steps = int(round(period / dt))
            save_every = int(round(args.sample / dt))
            if save_every < 1 or abs(save_every * dt - args.sample) > 1e-9:
                continue
            y0 = np.repeat(state[:, None], args.cells, axis=1)
            try:
                # untimed warm-up: compiles (numba / NVRTC) and faults the memory in
                integrate_cells(model, y0[:, :1], dt=dt, n_steps=min(n_steps, 10), method=method, backend=backend)
                wall, Y = _timed(model, y0, dt, n_steps, save_every, method, backend)
            except UnstableStepError:
                rows.append({"method": method, "dt": dt, "unstable": True})
                print(f"| {method} | {dt:g} | unstable | | | {backend} |")
                continue
            V = Y[:, v, 0]
            rmse = float(np.sqrt(np.mean((V - coarse_ref) ** 2)))
            apd = action_potential_metrics(V[None, :], coarse_t)["apd90"][0]
            apd_error = float(100 * (apd - coarse_ref_metrics["apd90"][0]) / coarse_ref_metrics["apd90"][0])
            per_cell = 1e3 * wall / args.cells
            rows.append({"method": method, "dt": dt, "v_rmse_mv": rmse, "apd90_error_pct": apd_error,
                         "ms_per_beat_per_cell": per_cell, "backend": backend, "cells": args.cells})
            print(f"| {method} | {dt:g} | {rmse:.3g} | {apd_error:+.3g} | {per_cell:.3g} | {backend} |")
            sys.stdout.flush()
    if args.json:
        Path(args.json).write_text(json.dumps({"model": model.name, "source": model.source, "beats": args.beats,
                                               "reference": ref_metrics, "rows": rows}, indent=1) + "\n")
    return 0


def _timed(model, y0, dt, n_steps, save_every, method, backend):
    if backend == "cuda":
        import cupy

        cupy.cuda.runtime.deviceSynchronize()
        started = time.perf_counter()
        _, Y = integrate_cells(model, y0, dt=dt, n_steps=n_steps, save_every=save_every, method=method,
                               backend=backend, to_host=False)
        cupy.cuda.runtime.deviceSynchronize()
        wall = time.perf_counter() - started
        return wall, cupy.asnumpy(Y[:, :, :1])  # the cells are identical: copy one back, not gigabytes
    started = time.perf_counter()
    _, Y = integrate_cells(model, y0, dt=dt, n_steps=n_steps, save_every=save_every, method=method, backend=backend)
    return time.perf_counter() - started, Y


if __name__ == "__main__":
    sys.exit(main())
