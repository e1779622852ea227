"""Euler solver throughput, and how far it is from the machine's limits.

    python benchmarks/euler.py                  # full sizes: thesis workload of 16M trajectories
    python benchmarks/euler.py --n 1000000      # scaled down
    python benchmarks/euler.py --backends cpu,numpy,cuda

Without ``--backends`` it runs cpu and numpy, and cuda when CuPy can use a GPU here (else it says it
skipped it). A backend named in ``--backends`` that cannot run here (cuda without CuPy or a GPU) is
an error before any work: exit 2, as for any bad option. ``benchmarks/gpu_check.sh`` counts that as
a failed step on a GPU host.

Two workloads, float32 as in the thesis' CUDA baseline:

- data generation (problem B_S style): dt = 0.01 to t = 25, a state kept every 0.1 (251 states);
- the thesis benchmark (Table 11): N = 16,000,000 initial conditions, dt = 0.1 to t = 10, one stored
  state per time unit (10 states + the initial one); on the CPU in memory-sized chunks written into
  reused buffers, on CUDA all at once with the results left on the device (and once more with the
  copy to the host).

For each, the work and minimum memory traffic per trajectory, and the fraction of the device's
peak compute and bandwidth the measured time implies. Peaks are stated with their source: the CPU's
FP32 FMA peak from its clock, core count and SIMD width (an upper bound the FHN step cannot reach:
it is not all FMAs), its bandwidth measured here with a NumPy copy; the GPU's from the device
properties CuPy reports.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from fhn_automl.physics.cell_models import FitzHughNagumo  # noqa: E402
from fhn_automl._cli import comma_list, positive_int  # noqa: E402
from fhn_automl.physics.euler import (  # noqa: E402
    CudaUnavailableError, euler_trajectories, iter_euler_chunks, n_saved_states, resolve_backend)

#: FLOPs of one FHN Euler step as written (cuda/fhn_euler.cu): dU 7, dW 4, the two updates 2 each
FLOPS_PER_STEP = 15
FLOAT_BYTES = 4


def workload_costs(n_steps: int, n_saved: int) -> tuple[int, int]:
    """(FLOPs, minimum bytes) per trajectory: read u0, w0, I once; write every saved U and W once."""
    return FLOPS_PER_STEP * n_steps, FLOAT_BYTES * (3 + 2 * n_saved)


def best_of(repeats: int, run) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


# ------------------------------------------------------------------------------------------ CPU


def cpu_description() -> dict[str, str]:
    info = {"machine": platform.machine(), "python": platform.python_version()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for key in ("Model name", "CPU(s)", "Thread(s) per core", "L2 cache", "L3 cache"):
            match = re.search(rf"^{re.escape(key)}:\s*(.+)$", lscpu, re.MULTILINE)
            if match:
                info[key] = match.group(1).strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu MHz"] = re.search(r"cpu MHz\s*:\s*([\d.]+)", cpuinfo).group(1)
        flags = set(re.search(r"flags\s*:\s*(.+)", cpuinfo).group(1).split())
        info["simd"] = "avx512f" if "avx512f" in flags else "avx2" if "avx2" in flags else "sse"
    except (OSError, AttributeError):
        pass
    info["load average"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return info


def cpu_peaks(info: dict[str, str], threads: int) -> tuple[float, str]:
    """FP32 FMA peak in FLOP/s for ``threads`` cores, and how it was derived."""
    ghz = float(info.get("cpu MHz", "2000")) / 1000
    lanes = {"avx512f": 16, "avx2": 8}.get(info.get("simd", ""), 4)
    peak = threads * ghz * 1e9 * lanes * 2 * 2  # 2 FMA ports, 2 FLOPs per FMA
    return peak, f"{threads} cores x {ghz:.2f} GHz x {lanes} fp32 lanes ({info.get('simd')}) x 2 FMA ports x 2"


def measure_copy_bandwidth(megabytes: int = 512, repeats: int = 5) -> float:
    """Bytes/s of ``np.copyto`` (read + write counted), best of ``repeats``: a STREAM-copy stand-in."""
    source = np.ones(megabytes * 2**20 // 4, dtype=np.float32)
    target = np.empty_like(source)
    np.copyto(target, source)  # fault the pages in first
    best = min(best_of(repeats, lambda: np.copyto(target, source)))
    return 2 * source.nbytes / best


# ------------------------------------------------------------------------------------------ GPU


#: datasheet peaks (FP32 non-tensor FLOP/s, memory B/s) for when the device properties lack clocks
DATASHEET_PEAKS = {"H100 SXM": (67e12, 3.35e12), "H100 PCIe": (51e12, 2.0e12), "H100 NVL": (60e12, 3.9e12),
                   "H200": (67e12, 4.8e12), "A100": (19.5e12, 2.0e12)}


def gpu_description_and_peaks() -> tuple[dict[str, str], float, float, str]:
    """Device name and FP32 / bandwidth peaks: from the clocks CuPy reports, else a datasheet."""
    import cupy as cp

    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    info = {"gpu": name, "compute capability": f"{props['major']}.{props['minor']}",
            "SMs": str(props["multiProcessorCount"])}
    clock_khz, mem_khz, bus_bits = props.get("clockRate"), props.get("memoryClockRate"), props.get("memoryBusWidth")
    if clock_khz and mem_khz and bus_bits:
        fp32_lanes = 64 if (props["major"], props["minor"]) == (8, 0) else 128  # per SM: A100 64, Hopper 128
        peak_flops = props["multiProcessorCount"] * fp32_lanes * 2 * clock_khz * 1e3
        peak_bytes = 2 * mem_khz * 1e3 * bus_bits / 8
        source = (f"{props['multiProcessorCount']} SMs x {fp32_lanes} fp32 lanes x 2 x {clock_khz / 1e6:.2f} GHz; "
                  f"2 x {mem_khz / 1e6:.2f} GHz x {bus_bits}-bit bus (cudaDeviceProp)")
        return info, peak_flops, peak_bytes, source
    for key, (peak_flops, peak_bytes) in DATASHEET_PEAKS.items():
        if all(word in name for word in key.split()):
            return info, peak_flops, peak_bytes, f"NVIDIA datasheet figures for {key}"
    return info, float("nan"), float("nan"), "unknown device: no peak figures"


def measure_device_copy_bandwidth(megabytes: int = 4096, repeats: int = 10) -> float:
    """Bytes/s of a device-to-device copy (read + write counted), best of ``repeats``, CUDA events."""
    import cupy as cp

    source = cp.ones(megabytes * 2**20 // 4, dtype=cp.float32)
    target = cp.empty_like(source)
    target[...] = source
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    best = float("inf")
    for _ in range(repeats):
        start.record()
        target[...] = source
        stop.record()
        stop.synchronize()
        best = min(best, cp.cuda.get_elapsed_time(start, stop) / 1e3)
    del source, target
    return 2 * megabytes * 2**20 / best


#: FP32 instructions the inner loop of cuda/fhn_euler.cu issues per step, counted from the source
#: with fused multiply-adds contracted as NVCC does by default (u-alpha, 1-u, two products, -w, +I,
#: k*, beta*u-gamma*w as mul+fma, eps*, two fma updates): the issue-rate bound counts instructions,
#: not FLOPs, since an FMA lane does 2 FLOPs but a subtraction only 1
INSTRUCTIONS_PER_STEP = 11


def cuda_limits(n: int, n_steps: int, cost: tuple[int, int], peak_flops: float, run, repeats: int) -> None:
    """The thesis workload's kernel time (CUDA events) against the device's limits.

    Limits: memory = the minimum traffic at the measured device-to-device copy bandwidth; compute =
    the FP32 instruction issue rate (SMs x 128 lanes x clock = peak FLOP/s / 2) at
    ``INSTRUCTIONS_PER_STEP``; the kernel can be no faster than the larger of the two.
    """
    import cupy as cp

    bandwidth = measure_device_copy_bandwidth()
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    times = []
    for _ in range(max(repeats, 5)):
        start.record()
        run()
        stop.record()
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop) / 1e3)
    best = min(times)
    memory_s = cost[1] * n / bandwidth
    issue_s = INSTRUCTIONS_PER_STEP * n_steps * n / (peak_flops / 2)
    flop_s = cost[0] * n / peak_flops
    limit = max(memory_s, issue_s)
    print(f"\nthesis workload on {n:,} ICs, kernel + launch by CUDA events: best {best * 1e3:.3f} ms, "
          f"median {np.median(times) * 1e3:.3f} ms (thesis, RTX 4070: 132.5 ms)")
    print(f"measured device-to-device copy: {bandwidth / 1e12:.2f} TB/s (read + write counted)")
    print(f"limits: memory {memory_s * 1e3:.3f} ms ({cost[1]} B/IC at the measured copy rate); FP32 issue "
          f"{issue_s * 1e3:.3f} ms ({INSTRUCTIONS_PER_STEP} instr/step at {peak_flops / 2e12:.1f} T instr/s); "
          f"FLOP-only {flop_s * 1e3:.3f} ms")
    print(f"kernel / limit = {best / limit:.2f}x (target: within 2x)", flush=True)


def cuda_agreement(model, u0, w0, n_steps: int, every: int, buffers) -> None:
    """The CUDA kernel's thesis-workload output against the CPU (numba) float32 solver on the same ICs.

    Not bit-equal by design: NVRTC contracts ``u + dt * du`` into FMAs, the CPU twin does not (the
    ``gpu`` test with ``--fmad=false`` shows bit equality); the difference is reported, largest and mean.
    """
    import cupy as cp

    u_host, w_host = cp.asnumpy(u0), cp.asnumpy(w0)
    euler_trajectories(model, u0, w0, 0.0, dt=0.1, n_steps=n_steps, save_every=every, backend="cuda",
                       to_host=False, out=buffers)
    gpu = [cp.asnumpy(b) for b in buffers]
    started = time.perf_counter()
    cpu = [np.empty_like(g) for g in gpu]
    chunk = 1 << 20
    for begin in range(0, u_host.size, chunk):
        U, W = euler_trajectories(model, u_host[begin:begin + chunk], w_host[begin:begin + chunk], 0.0, dt=0.1,
                                  n_steps=n_steps, save_every=every, backend="cpu")
        cpu[0][:, begin:begin + chunk], cpu[1][:, begin:begin + chunk] = U.T, W.T
    seconds = time.perf_counter() - started
    for name, g, c in zip("UW", gpu, cpu):
        diff = np.abs(g.astype(np.float64) - c)
        print(f"agreement CUDA vs CPU numba float32, {name} over {u_host.size:,} ICs x {g.shape[0]} states: "
              f"max |diff| {diff.max():.3g}, mean {diff.mean():.3g}, "
              f"share > 1e-4: {np.mean(diff > 1e-4):.2e}; NaN: {int(np.isnan(g).sum())}")
    print(f"(CPU reference took {seconds:.2f} s)", flush=True)


# ------------------------------------------------------------------------------------------ runs


def report(label: str, n: int, seconds: list[float], flops: int, nbytes: int, peak_flops: float,
           peak_bytes: float) -> str:
    best = min(seconds)
    line = (f"| {label} | {n:,} | {best:.4g} | {np.median(seconds):.4g} | {n / best / 1e6:.2f} | "
            f"{flops * n / best / 1e9:.1f} ({100 * flops * n / best / peak_flops:.1f}%) | "
            f"{nbytes * n / best / 1e9:.2f} ({100 * nbytes * n / best / peak_bytes:.1f}%) |")
    print(line, flush=True)
    return line


BENCH_BACKENDS = ("cpu", "numpy", "cuda")


#: ``--backends``: a comma-separated subset of :data:`BENCH_BACKENDS`
backend_list = comma_list(BENCH_BACKENDS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=positive_int, default=16_000_000, help="initial conditions of the thesis workload")
    parser.add_argument("--n-datagen", type=positive_int, default=200_000,
                        help="trajectories of the data-generation run")
    parser.add_argument("--backends", type=backend_list, default=None,
                        help="comma-separated: cpu, numpy, cuda (default: cpu,numpy and cuda when it can run; "
                             "a named backend that cannot run is an error, exit 2)")
    parser.add_argument("--chunk", type=positive_int, default=1 << 18, help="CPU chunk size (trajectories)")
    parser.add_argument("--numpy-chunk", type=positive_int, default=1 << 15, help="NumPy chunk size (FACTS.md: 32k)")
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--threads", type=positive_int, default=None, help="numba threads (default: all cores)")
    args = parser.parse_args(argv)
    backends = args.backends or list(BENCH_BACKENDS)
    cuda_error = None
    if "cuda" in backends:
        try:
            resolve_backend("cuda")
        except CudaUnavailableError as error:
            cuda_error = error
    if cuda_error is not None and args.backends is not None:
        # asked for by name: exit 0 would pass for a CUDA measurement that never happened
        print(f"error: --backends cuda cannot run here: {cuda_error}", file=sys.stderr)
        return 2
    model = FitzHughNagumo()
    rng = np.random.default_rng(0)

    header = ("| run | trajectories | best s | median s | M traj/s | GFLOP/s (of peak) | GB/s min traffic (of peak) |\n"
              "|---|---|---|---|---|---|---|")
    datagen_steps, datagen_every = 2500, 10
    thesis_steps, thesis_every = 100, 10
    datagen_cost = workload_costs(datagen_steps, n_saved_states(datagen_steps, datagen_every))
    thesis_cost = workload_costs(thesis_steps, n_saved_states(thesis_steps, thesis_every))
    print(f"work per trajectory: data generation {datagen_cost[0]:,} FLOP, {datagen_cost[1]:,} B; "
          f"thesis workload {thesis_cost[0]:,} FLOP, {thesis_cost[1]:,} B "
          f"({FLOPS_PER_STEP} FLOP/step; bytes = u0, w0, I in + 2 x saved states out, float32)")

    if "cpu" in backends or "numpy" in backends:
        import numba

        if args.threads:
            numba.set_num_threads(args.threads)
        threads = numba.get_num_threads()
        info = cpu_description()
        peak_flops, flops_source = cpu_peaks(info, threads)
        bandwidth = measure_copy_bandwidth()
        print("\nCPU: " + "; ".join(f"{k}: {v}" for k, v in info.items()) + f"; numba threads: {threads}")
        print(f"assumed peak FP32: {peak_flops / 1e9:.0f} GFLOP/s = {flops_source}")
        print(f"measured memory bandwidth (numpy copy, 512 MiB, read+write): {bandwidth / 1e9:.1f} GB/s\n")
        print(header)
        u_all = rng.uniform(0.0, 1.0, args.n).astype(np.float32)
        w_all = rng.uniform(0.0, 0.18, args.n).astype(np.float32)
        for backend in [b for b in ("cpu", "numpy") if b in backends]:
            n_gen = args.n_datagen if backend == "cpu" else max(1, args.n_datagen // 8)
            u0, w0 = u_all[:n_gen], w_all[:n_gen]
            chunk = args.chunk if backend == "cpu" else args.numpy_chunk
            euler_trajectories(model, u0[:chunk], w0[:chunk], 0.0, dt=0.01, n_steps=10, save_every=10,
                               backend=backend)  # compile outside the timing

            def datagen() -> None:
                for _ in iter_euler_chunks(model, u0, w0, 0.0, chunk_size=min(chunk, 1 << 16), dt=0.01,
                                           n_steps=datagen_steps, save_every=datagen_every, backend=backend,
                                           reuse_buffers=True):
                    pass

            report(f"{backend}: data generation, dt 0.01, 251 states", n_gen, best_of(args.repeats, datagen),
                   *datagen_cost, peak_flops, bandwidth)

            def thesis() -> None:
                for _ in iter_euler_chunks(model, u_all, w_all, 0.0, chunk_size=chunk, dt=0.1, n_steps=thesis_steps,
                                           save_every=thesis_every, backend=backend, reuse_buffers=True):
                    pass

            repeats = args.repeats if backend == "cpu" else 1
            report(f"{backend}: thesis workload, dt 0.1 to t 10, chunks of {chunk:,}", args.n,
                   best_of(repeats, thesis), *thesis_cost, peak_flops, bandwidth)

    if "cuda" in backends:
        if cuda_error is not None:
            print(f"\nCUDA: skipped (not named in --backends; {cuda_error})")
            return 0
        import cupy as cp

        info, peak_flops, peak_bytes, source = gpu_description_and_peaks()
        print("\nGPU: " + "; ".join(f"{k}: {v}" for k, v in info.items()))
        print(f"assumed peaks: {peak_flops / 1e12:.1f} TFLOP/s FP32, {peak_bytes / 1e12:.2f} TB/s = {source}\n")
        print(header)
        u0 = cp.asarray(rng.uniform(0.0, 1.0, args.n), dtype=cp.float32)
        w0 = cp.asarray(rng.uniform(0.0, 0.18, args.n), dtype=cp.float32)
        i_app = cp.zeros(args.n, dtype=cp.float32)
        buffers = tuple(cp.empty((n_saved_states(thesis_steps, thesis_every), args.n), cp.float32) for _ in range(2))

        def on_device(n_steps: int, every: int, n: int, out=None) -> None:
            euler_trajectories(model, u0[:n], w0[:n], i_app[:n], dt=0.1 if n_steps == thesis_steps else 0.01,
                               n_steps=n_steps, save_every=every, backend="cuda", to_host=False, out=out)
            cp.cuda.Device().synchronize()

        on_device(10, 10, 1024)  # compile outside the timing
        n_gen = min(args.n, max(args.n_datagen, 1_000_000))
        report("cuda: data generation, dt 0.01, 251 states (on device)", n_gen,
               best_of(args.repeats, lambda: on_device(datagen_steps, datagen_every, n_gen)),
               *datagen_cost, peak_flops, peak_bytes)
        report("cuda: thesis workload, all at once, results stay on device", args.n,
               best_of(args.repeats, lambda: on_device(thesis_steps, thesis_every, args.n, buffers)),
               *thesis_cost, peak_flops, peak_bytes)

        def with_copy() -> None:
            euler_trajectories(model, u0, w0, i_app, dt=0.1, n_steps=thesis_steps, save_every=thesis_every,
                               backend="cuda", to_host=True)

        report("cuda: thesis workload, incl. copy to host", args.n, best_of(args.repeats, with_copy),
               *thesis_cost, peak_flops, peak_bytes)
        cuda_limits(args.n, thesis_steps, thesis_cost, peak_flops, lambda: on_device(thesis_steps, thesis_every,
                                                                                  args.n, buffers),
                    args.repeats)
        cuda_agreement(model, u0, w0, thesis_steps, thesis_every, buffers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
