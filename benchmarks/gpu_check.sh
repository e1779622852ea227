#!/usr/bin/env bash
# Every GPU test and benchmark of fhn_automl in one call, for the few minutes a GPU machine is lent.
#
#   bash benchmarks/gpu_check.sh            # results in $OUT if set, else ./gpu_check_out/<UTC time>/
#   PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh
#
# Runs from a plain checkout (no install: PYTHONPATH points at it) with the host's Python, which on
# the lent machines has torch + CUDA, CuPy, numba and pytest but not ray, mlflow or optuna
# (shared/FACTS.md); so only steps that do not need those run, and the post-stage compile test runs
# only when its imports succeed. Steps run in order of what they prove, each under a time limit cut to
# what is left of GPU_CHECK_BUDGET_S (default 540 s: the device tool allows 600 s per command); a
# failed step is recorded and the next one runs.
#
# Writes: summary.md (one row per step), steps.tsv, <step>.log per step, nvidia-smi.txt, versions.txt,
# junit-*.xml, bench/ (the surrogate vs Euler report). With $OUT set (the device tool, which brings back
# at most 8 files), everything is written to a scratch folder and $OUT receives summary.md,
# versions.txt and gpu_check.tar.gz (all of it).
#
# GPU_CHECK_STEPS="euler_cuda bench_cuda" runs only the named GPU steps (a rerun after a fix).
# Trained models for bench_cuda: every folder gpu_models/b_s_*/model (spec.json + weights.pt), made on a
# CPU beforehand with `python -m fhn_automl.train problem_b_s --layers L --steps 15000 --threads 1
# --seed 0 --out gpu_models/b_s_<L>` and carried; without them bench_cuda times the untrained reference
# architecture only (its error is meaningless). The TP06 verdict (verdict_tp06_cuda) takes every
# gpu_models/tp06_*/model, made with `python -m fhn_automl.train tp06_beat --layers tanh-64,tanh-64,tanh-64
# --steps 60000 --out gpu_models/tp06_tanh64x3` (RESULTS.md, issue 22); without them it times the solver
# sweep and an untrained network only. TP06 resolves from benchmarks/models/tp06_epi.json on a host
# without the finitewave packages (physics.ionic_sources.CHECKOUT_BUNDLES).
#
# Exit status: 0 a GPU was visible and every step passed; 1 some step failed or timed out (GPU or
# not); 2 no GPU was visible: the GPU steps were skipped and only the CPU-side kernel checks ran
# (and passed). A GPU test that skips on a GPU host counts as failed: it means the GPU path did not run;
# so does the Euler benchmark, which exits 2 when its --backends cuda cannot run (CuPy missing).
#
# GPU_CHECK_FORCE=1 runs the GPU steps without a GPU: only to test this script's own plumbing (they fail).

set -u
set -o pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
BUDGET_S="${GPU_CHECK_BUDGET_S:-540}"
if [[ -n "${OUT:-}" ]]; then
    RESULTS="$(mktemp -d /tmp/gpu_check.XXXXXX)"  # packed into $OUT at the end (8 files come back)
else
    RESULTS="gpu_check_out/$(date -u +%Y%m%dT%H%M%SZ)"  # under the caller's folder; never overwrites a run
fi
mkdir -p "$RESULTS" || { echo "gpu_check: cannot create $RESULTS" >&2; exit 1; }
RESULTS="$(cd "$RESULTS" && pwd)"
cd "$REPO" || exit 1
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
STARTED=$SECONDS
FAILED=0
printf 'step\tstatus\trc\tseconds\tnote\n' > "$RESULTS/steps.tsv"

log() { echo "[gpu_check $(date -u +%H:%M:%S)] $*"; }

record() {  # name status rc seconds note
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" >> "$RESULTS/steps.tsv"
    log "$1: $2${5:+ ($5)}"
    [[ "$2" == failed* ]] && FAILED=1
    return 0
}

# wanted NAME: whether GPU_CHECK_STEPS (if set) names this step
wanted() {
    [[ -z "${GPU_CHECK_STEPS:-}" || " $GPU_CHECK_STEPS " == *" $1 "* ]]
}

# step NAME CAP_SECONDS COMMAND...: runs COMMAND under a limit, logs to NAME.log, records the outcome
step() {
    local name="$1" cap="$2"
    shift 2
    if ! wanted "$name"; then
        return 0
    fi
    local left=$((BUDGET_S - (SECONDS - STARTED)))
    if ((left < 20)); then
        record "$name" "skipped" "-" 0 "budget of ${BUDGET_S}s spent"
        return 0
    fi
    local limit=$((cap < left ? cap : left))
    local begin=$SECONDS rc
    log "$name (limit ${limit}s): $*"
    timeout --kill-after=10 "$limit" "$@" > "$RESULTS/$name.log" 2>&1
    rc=$?
    local took=$((SECONDS - begin))
    if ((rc == 0)); then
        record "$name" "passed" "$rc" "$took" ""
    elif ((rc == 124 || rc == 137)); then
        record "$name" "failed: timed out" "$rc" "$took" "limit ${limit}s; see $name.log"
    else
        record "$name" "failed" "$rc" "$took" "see $name.log: $(tail -n 1 "$RESULTS/$name.log" | cut -c1-160)"
    fi
    return 0
}

# junit_skips FILE: "N skipped: reason; reason" for skipped test cases in a pytest JUnit file
junit_skips() {
    "$PYTHON" - "$1" <<'EOF'
import sys
import xml.etree.ElementTree as ET
try:
    cases = ET.parse(sys.argv[1]).getroot().iter("testcase")
except (OSError, ET.ParseError):
    sys.exit(0)
reasons = [f"{c.get('name')}: {s.get('message', '')}" for c in cases for s in c.findall("skipped")]
if reasons:
    print(f"{len(reasons)} skipped: " + "; ".join(reasons)[:300])
EOF
}

# ------------------------------------------------------------------------------ the machine
log "results in $RESULTS"
{ nvidia-smi && nvidia-smi -q; } > "$RESULTS/nvidia-smi.txt" 2>&1
SMI_RC=$?
{
    echo "date: $(date -u +%FT%TZ)"
    echo "host: $(uname -a)"
    echo "cpus: $(nproc)"
    echo "uptime: $(uptime)"
    echo "commit: $(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo 'unknown (no git)')"
    echo "python: $PYTHON ($("$PYTHON" --version 2>&1))"
    echo "g++: $(g++ --version 2>/dev/null | head -n 1 || echo 'not installed')"
    echo "nvcc: $(nvcc --version 2>/dev/null | tail -n 1 || echo 'not installed')"
    "$PYTHON" - <<'EOF'
import importlib
for name in ("numpy", "scipy", "numba", "torch", "cupy", "pyarrow", "pandas", "yaml", "pytest",
             "ray", "mlflow", "optuna", "torch_tensorrt"):
    try:
        module = importlib.import_module(name)
        print(f"{name}: {getattr(module, '__version__', 'present')}")
    except Exception as error:
        print(f"{name}: not importable ({type(error).__name__}: {error})")
try:
    import torch
    print(f"torch.cuda: available={torch.cuda.is_available()} cuda={torch.version.cuda} "
          f"devices={torch.cuda.device_count()}")
    for i in range(torch.cuda.device_count()):
        print(f"  {i}: {torch.cuda.get_device_name(i)} capability {torch.cuda.get_device_capability(i)}")
except Exception as error:
    print(f"torch.cuda: {type(error).__name__}: {error}")
try:
    import cupy
    print(f"cupy: runtime {cupy.cuda.runtime.runtimeGetVersion()} driver {cupy.cuda.runtime.driverGetVersion()} "
          f"nvrtc {cupy.cuda.nvrtc.getVersion()} devices {cupy.cuda.runtime.getDeviceCount()}")
except Exception as error:
    print(f"cupy.cuda: {type(error).__name__}: {error}")
try:
    from numba import cuda
    print(f"numba.cuda: available={cuda.is_available()}")
except Exception as error:
    print(f"numba.cuda: {type(error).__name__}: {error}")
EOF
} > "$RESULTS/versions.txt" 2>&1
cat "$RESULTS/versions.txt"

# A GPU counts when torch or CuPy can use one (nvidia-smi alone does not make the GPU paths run).
GPU_REASON="$("$PYTHON" - <<'EOF' 2>&1
reasons = []
try:
    import torch
    if torch.cuda.is_available():
        raise SystemExit(0)
    reasons.append("torch sees no CUDA device")
except ImportError as error:
    reasons.append(f"torch: {error}")
try:
    import cupy
    if cupy.cuda.runtime.getDeviceCount() > 0:
        raise SystemExit(0)
    reasons.append("CuPy sees no CUDA device")
except Exception as error:
    reasons.append(f"CuPy: {type(error).__name__}: {error}")
print("; ".join(reasons))
raise SystemExit(1)
EOF
)"
HAVE_GPU=$?
if [[ "${GPU_CHECK_FORCE:-0}" == 1 ]]; then
    log "GPU_CHECK_FORCE=1: running the GPU steps although: $GPU_REASON"
    HAVE_GPU=0
fi
((SMI_RC != 0)) && GPU_REASON="nvidia-smi failed (rc $SMI_RC); $GPU_REASON"

# ------------------------------------------------------------------------------ steps
# The kernel source checks (NVRTC compile, the kernel body run on the CPU) need no GPU: always.
step cuda_source 120 "$PYTHON" -m pytest tests/physics/test_cuda_source.py -m "not gpu" -q -p no:cacheprovider -rs \
    --junitxml="$RESULTS/junit-cuda_source.xml"

GPU_STEPS="gpu_tests euler_cuda bench_cuda train_step_cuda packed_cuda cell_solvers_cuda verdict_tp06_cuda euler_cpu_same_host"
if ((HAVE_GPU != 0)); then
    for name in $GPU_STEPS; do
        wanted "$name" && record "$name" "skipped" "-" 0 "no GPU: ${GPU_REASON//$'\n'/ }"
    done
else
    # 1. the gpu-marked tests of the layers that import without ray / mlflow / optuna, and the
    #    post-stage compile tests (CUDA graphs; TensorRT skips where torch_tensorrt is absent, and is
    #    deselected here: it cannot be installed on these machines, FACTS.md)
    step gpu_tests 150 "$PYTHON" -m pytest -m gpu tests/physics tests/learning tests/post/test_compile.py \
        -k "not tensorrt" -q -p no:cacheprovider -rs --junitxml="$RESULTS/junit-gpu_tests.xml"
    if wanted gpu_tests; then
        skips="$(junit_skips "$RESULTS/junit-gpu_tests.xml")"
        if [[ -n "$skips" ]]; then
            record gpu_tests_not_skipped "failed: a GPU test skipped on a GPU host" - 0 "$skips"
        fi
    fi
    # 2. Euler: the CuPy kernel on the thesis workload (16M ICs) against the device's limits, its
    #    agreement with the CPU solver on the same 16M ICs, and data generation
    #    (--backends cuda that cannot run exits 2 with the reason: a failed step, never a silent skip)
    step euler_cuda 120 "$PYTHON" benchmarks/euler.py --backends cuda --repeats 3
    # 3. surrogates (trained Pareto-size models if carried) vs the CUDA Euler kernel at matched accuracy
    #    against DOP853, each with eager, CUDA graphs, torch.compile and torch.compile + CUDA graphs
    models=()
    for folder in gpu_models/b_s_*/model; do
        [[ -f "$folder/spec.json" ]] && models+=(--model-dir "$folder")
    done
    ((${#models[@]} == 0)) && log "bench_cuda: no gpu_models/b_s_*/model: timing the untrained reference only"
    step bench_cuda 200 "$PYTHON" -m fhn_automl.bench --device cuda --n-ref 256 --repeats 3 \
        --backend eager,cudagraph,compile,compile-cudagraph "${models[@]}" --out "$RESULTS/bench"
    # 4. packed training vs one model per train() on the GPU (issue 10's >= 50x): the B_S grid, 252
    #    models in 2 packs (one per depth), every 21st model also trained alone, each pack beside its
    #    share; the activation modes timed first on the 216-model pack, the fastest used
    step packed_cuda 180 "$PYTHON" benchmarks/packed.py --device cuda --interleave --steps 1000 --pack-sizes 252 \
        --single-every 21 --n-trajectories 100 --mode-pack-size 216 --mode-steps 100 --activation-mode best
    # 5. training steps on the GPU: DDNN, PINN (forward tangent and autograd), iterator
    step train_step_cuda 90 "$PYTHON" benchmarks/train_step.py steps --device cuda --repeats 2 --n-steps 500
    # 5b. N-state cell models (issue 18): the CUDA kernel generated from TP06 (from the committed bundle,
    #     so neither Myokit nor the finitewave packages are needed here; SymPy is) against the BDF reference
    #     on the host; its gpu-marked kernel tests ran in step 1
    step cell_solvers_cuda 200 "$PYTHON" benchmarks/cell_solvers.py --cell-model benchmarks/models/tp06_epi.json \
        --beats 20 --cells 16384 --device cuda --json "$RESULTS/cell_solvers_cuda.json"
    # 5c. the verdict of issue 22 on the GPU: TP06 beat surrogates (torch CUDA, eager and CUDA graphs)
    #     against the generated CUDA Rush-Larsen kernel over its dt sweep, 16,384 fresh cells paced 100
    #     beats on the GPU, errors against BDF on 8 of them (host CPU), counts (a) and (b)
    tp06_models=()
    for folder in gpu_models/tp06_*/model; do
        [[ -f "$folder/spec.json" ]] && tp06_models+=(--model-dir "$folder")
    done
    ((${#tp06_models[@]} == 0)) && log "verdict_tp06_cuda: no gpu_models/tp06_*/model: an untrained network only"
    step verdict_tp06_cuda 240 "$PYTHON" -m fhn_automl.bench --problem tp06_beat --device cuda --n 16384 --n-ref 8 \
        --repeats 3 --backend eager,cudagraph "${tp06_models[@]}" --out "$RESULTS/verdict_tp06"
    # 6. the numba baseline on this host's CPUs, for a same-machine speed-up
    step euler_cpu_same_host 60 "$PYTHON" benchmarks/euler.py --backends cpu --repeats 1
fi

# ------------------------------------------------------------------------------ summary
if ((FAILED != 0)); then
    EXIT=1
    VERDICT="FAILED: at least one step failed (exit 1)"
elif ((HAVE_GPU != 0)); then
    EXIT=2
    VERDICT="NO GPU: the GPU steps did not run (exit 2); ${GPU_REASON//$'\n'/ }"
else
    EXIT=0
    VERDICT="PASSED: every step ran on the GPU host and passed (exit 0)"
fi
{
    echo "# gpu_check $(date -u +%FT%TZ)"
    echo
    echo "$VERDICT"
    echo
    gpu_name="$(grep -m1 -E '^  0: ' "$RESULTS/versions.txt" | sed 's/^  0: //')"
    echo "- GPU: ${gpu_name:-none visible}; CPUs: $(nproc)"
    echo "- load before: $(grep -m1 '^uptime' "$RESULTS/versions.txt" | sed 's/.*load average/load average/')"
    echo "- load after: $(uptime | sed 's/.*load average/load average/')"
    echo "- total: $((SECONDS - STARTED)) s of a ${BUDGET_S} s budget"
    echo
    echo "| step | status | rc | seconds | note |"
    echo "|---|---|---|---|---|"
    tail -n +2 "$RESULTS/steps.tsv" | awk -F'\t' '{ gsub(/\|/, "/", $5); printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5 }'
} > "$RESULTS/summary.md"
cat "$RESULTS/summary.md"
if [[ -n "${OUT:-}" ]]; then
    cp "$RESULTS/summary.md" "$RESULTS/versions.txt" "$OUT/"
    tar -czf "$OUT/gpu_check.tar.gz" -C "$RESULTS" . || { echo "gpu_check: could not pack $RESULTS" >&2; EXIT=1; }
fi
exit "$EXIT"
