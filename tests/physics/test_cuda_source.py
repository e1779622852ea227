"""The CUDA Euler kernel checked without a GPU: NVRTC compiles it, the CPU runs its body.

- NVRTC (the ``nvidia-cuda-nvrtc`` wheel of the dev extra; it needs no GPU or driver) compiles
  ``cuda/fhn_euler.cu`` with the options CuPy's ``RawModule`` adds, to PTX and to the cubin CuPy
  builds on the lent H200 (sm_90): the entry points the launcher asks for exist, their parameters
  match, type for type, the arguments ``_euler_cuda`` packs, and the float32 kernel never widens to
  float64.
- ``cuda_host_shim.cpp`` compiles the same source with g++ and runs every thread of the grid on the
  CPU; ``_euler_cuda.euler_cuda`` drives it through a NumPy stand-in for CuPy, so its real launch
  code (buffers, grid, argument list, layout) runs too. The result equals the NumPy reference bit for
  bit: the shim is built without fused multiply-adds and the kernel does NumPy's operations in
  NumPy's order.

What only a GPU shows (CuPy's own compile, the driver's launch, the FMA-contracted device code) is
in the ``gpu``-marked tests; benchmarks/gpu_check.sh runs them on a GPU host.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from fhn_automl.physics import _euler_cuda
from fhn_automl.physics.cell_models import FitzHughNagumo
from fhn_automl.physics.euler import euler_trajectories, n_saved_states

FHN = FitzHughNagumo()
KERNEL = _euler_cuda._CUDA_KERNELS[FitzHughNagumo]
SOURCE = _euler_cuda.CUDA_SOURCE_DIR / KERNEL.source
SHIM = Path(__file__).with_name("cuda_host_shim.cpp")
#: what CuPy's compile_with_cache appends to a RawModule's (empty) options; its -I folders are moot
#: here because the kernel includes no header
CUPY_OPTIONS = ("-ftz=true",)
#: the lent GPU machines are H200s (compute capability 9.0); CuPy compiles straight to a cubin there
LENT_GPU_ARCH = 90


# ------------------------------------------------------------------------------------------ NVRTC


class NvrtcError(RuntimeError):
    """NVRTC rejected the program; the message carries its log."""


@dataclass(frozen=True)
class NvrtcOutput:
    ptx: str
    cubin: bytes
    log: str


class Nvrtc:
    """The few NVRTC calls the tests need, through ctypes (the C API of nvrtc.h)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lib = ctypes.CDLL(str(path))
        self.lib.nvrtcGetErrorString.restype = ctypes.c_char_p

    def _check(self, result: int, call: str) -> None:
        if result != 0:
            raise NvrtcError(f"{call}: {self.lib.nvrtcGetErrorString(result).decode()}")

    def version(self) -> tuple[int, int]:
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._check(self.lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
        return major.value, minor.value

    def supported_archs(self) -> list[int]:
        count = ctypes.c_int()
        self._check(self.lib.nvrtcGetNumSupportedArchs(ctypes.byref(count)), "nvrtcGetNumSupportedArchs")
        archs = (ctypes.c_int * count.value)()
        self._check(self.lib.nvrtcGetSupportedArchs(archs), "nvrtcGetSupportedArchs")
        return list(archs)

    def compile(self, source: str, name: str, options: tuple[str, ...]) -> NvrtcOutput:
        program = ctypes.c_void_p()
        self._check(self.lib.nvrtcCreateProgram(ctypes.byref(program), source.encode(), name.encode(), 0, None,
                                                None), "nvrtcCreateProgram")
        try:
            encoded = (ctypes.c_char_p * len(options))(*(o.encode() for o in options))
            result = self.lib.nvrtcCompileProgram(program, len(options), encoded)
            size = ctypes.c_size_t()
            self._check(self.lib.nvrtcGetProgramLogSize(program, ctypes.byref(size)), "nvrtcGetProgramLogSize")
            log = ctypes.create_string_buffer(size.value)
            self._check(self.lib.nvrtcGetProgramLog(program, log), "nvrtcGetProgramLog")
            if result != 0:
                raise NvrtcError(f"{name} {' '.join(options)}: {log.value.decode()}")
            return NvrtcOutput(self._read(program, "PTX").decode(), self._read(program, "CUBIN"),
                               log.value.decode())
        finally:
            self.lib.nvrtcDestroyProgram(ctypes.byref(program))

    def _read(self, program: ctypes.c_void_p, kind: str) -> bytes:
        """The PTX or cubin (empty when NVRTC made none: a cubin needs -arch=sm_XX)."""
        size = ctypes.c_size_t()
        self._check(getattr(self.lib, f"nvrtcGet{kind}Size")(program, ctypes.byref(size)), f"nvrtcGet{kind}Size")
        if size.value == 0:
            return b""
        buffer = ctypes.create_string_buffer(size.value)
        self._check(getattr(self.lib, f"nvrtcGet{kind}")(program, buffer), f"nvrtcGet{kind}")
        return buffer.raw.rstrip(b"\0") if kind == "PTX" else buffer.raw


def nvrtc_library_candidates() -> list[Path]:
    """libnvrtc from the pip wheels (CUDA 13 and 12 layouts), then a CUDA toolkit, then the loader."""
    candidates: list[Path] = []
    spec = importlib.util.find_spec("nvidia")
    for base in (spec.submodule_search_locations or []) if spec else []:
        for pattern in ("cu13/lib/libnvrtc.so*", "cu12/lib/libnvrtc.so*", "cuda_nvrtc/lib/libnvrtc.so*"):
            candidates += sorted(Path(base).glob(pattern))
    for root in (os.environ.get("CUDA_PATH"), os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if root:
            candidates += sorted((Path(root) / "lib64").glob("libnvrtc.so*"))
    system = ctypes.util.find_library("nvrtc")
    if system:
        candidates.append(Path(system))
    return candidates


@pytest.fixture(scope="module")
def nvrtc() -> Nvrtc:
    tried = []
    for path in nvrtc_library_candidates():
        try:
            return Nvrtc(path)
        except OSError as error:
            tried.append(f"{path}: {error}")
    pytest.skip("NVRTC is not loadable (install the dev extra: pip install -e '.[dev]', which brings "
                f"nvidia-cuda-nvrtc); tried {tried or 'no candidate found'}")


@pytest.fixture(scope="module")
def compiled(nvrtc: Nvrtc) -> dict[str, NvrtcOutput]:
    """The source compiled as CuPy would: PTX for the lent GPU, the sm_90 cubin CuPy loads there, and
    PTX for the oldest architecture this NVRTC supports (nothing newer sneaks into the kernel)."""
    source = SOURCE.read_text()
    oldest = min(nvrtc.supported_archs())
    return {
        "ptx": nvrtc.compile(source, SOURCE.name, (f"-arch=compute_{LENT_GPU_ARCH}", *CUPY_OPTIONS)),
        "cubin": nvrtc.compile(source, SOURCE.name, (f"-arch=sm_{LENT_GPU_ARCH}", *CUPY_OPTIONS)),
        "oldest": nvrtc.compile(source, SOURCE.name, (f"-arch=compute_{oldest}", *CUPY_OPTIONS)),
    }


def ptx_entries(ptx: str) -> dict[str, tuple[list[str], str]]:
    """Entry name -> (parameter types such as 'u64', 'f32', in order; the entry's body)."""
    entries = {}
    matches = list(re.finditer(r"\.entry\s+(\w+)\s*\(([^)]*)\)", ptx))
    for match, following in zip(matches, matches[1:] + [None]):
        body = ptx[match.end():following.start() if following else len(ptx)]
        entries[match.group(1)] = (re.findall(r"\.param\s+\.(\w+)\s+\w+", match.group(2)), body)
    return entries


def test_nvrtc_compiles_the_kernel_without_warnings(compiled: dict[str, NvrtcOutput]) -> None:
    for name, output in compiled.items():
        assert output.log.strip() == "", (name, output.log)
    for name in ("ptx", "oldest"):
        assert set(ptx_entries(compiled[name].ptx)) == set(KERNEL.entry_points.values()), name
    cubin = compiled["cubin"].cubin
    assert cubin[:4] == b"\x7fELF"
    for entry in KERNEL.entry_points.values():
        # the kernel's code section and its symbol, what cuModuleGetFunction looks up
        assert f".text.{entry}\0".encode() in cubin and f"\0{entry}\0".encode() in cubin, entry


def test_float32_kernel_never_widens_to_float64(compiled: dict[str, NvrtcOutput]) -> None:
    entries = ptx_entries(compiled["ptx"].ptx)
    single, double = entries[KERNEL.entry_points["float32"]][1], entries[KERNEL.entry_points["float64"]][1]
    assert ".f64" not in single  # a double literal would turn every step into float64 work
    assert "fma.rn.f64" in double or "mul.rn.f64" in double or "mul.f64" in double
    # -ftz=true (CuPy's) reached the compiler: float32 arithmetic flushes subnormals
    assert "mul.ftz.f32" in single or "fma.rn.ftz.f32" in single


# --------------------------------------------------------------------------- the launcher's side


def _numpy_as_cupy() -> types.ModuleType:
    """The part of CuPy's API ``euler_cuda`` uses, answered by NumPy on host memory."""
    fake = types.ModuleType("cupy")
    for name in ("asarray", "ascontiguousarray", "broadcast_to", "empty", "ndarray"):
        setattr(fake, name, getattr(np, name))
    fake.asnumpy = np.asarray
    return fake


def _ptx_type(argument: object) -> str:
    """The PTX parameter type a launched argument occupies: a pointer for an array, else its C type."""
    if isinstance(argument, np.ndarray):
        return "u64"
    if isinstance(argument, np.generic):
        return f"{'f' if isinstance(argument, np.floating) else 'u'}{8 * argument.nbytes}"
    raise TypeError(f"a {type(argument).__name__} argument: CuPy would guess its C type")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_launcher_arguments_match_the_compiled_parameters(dtype, compiled: dict[str, NvrtcOutput],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    launches = []

    def record(_source: str, entry: str):
        return lambda grid, block, args: launches.append((entry, grid, block, args))

    monkeypatch.setitem(sys.modules, "cupy", _numpy_as_cupy())
    monkeypatch.setattr(_euler_cuda, "_compiled_function", record)
    u0 = np.linspace(0.0, 1.0, 5)
    _euler_cuda.euler_cuda(FHN, u0, u0 / 10, 0.1, dt=0.1, n_steps=4, save_every=2, dtype=np.dtype(dtype),
                           to_host=True)
    [(entry, grid, block, args)] = launches
    assert entry == KERNEL.entry_points[np.dtype(dtype).name]
    assert grid == (1,) and block == (_euler_cuda.THREADS_PER_BLOCK,)
    params, _ = ptx_entries(compiled["ptx"].ptx)[entry]
    normalised = [re.sub(r"^[bs]", "u", p) for p in params]  # PTX spells integers b/s/u alike
    assert [_ptx_type(a) for a in args] == normalised
    assert all(a.dtype == dtype for a in args[:5])  # the five arrays are of the kernel's type


# ------------------------------------------------------------------------------ the CPU host shim


class HostKernel:
    """Stands in for a CuPy RawKernel: ``kernel(grid, block, args)`` runs the kernel body on the CPU."""

    def __init__(self, library: ctypes.CDLL, entry_point: str) -> None:
        self.launch = getattr(library, f"shim_launch_{entry_point}")
        self.launch.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_void_p),
                                ctypes.POINTER(ctypes.c_size_t), ctypes.c_int]
        self.launch.restype = ctypes.c_int

    def __call__(self, grid: tuple[int, ...], block: tuple[int, ...], args: tuple) -> None:
        assert tuple(grid[1:]) in ((), (1,), (1, 1)) and tuple(block[1:]) in ((), (1,), (1, 1)), "1-D launches only"
        keep, pointers, sizes = [], (ctypes.c_void_p * len(args))(), (ctypes.c_size_t * len(args))()
        for i, argument in enumerate(args):
            if isinstance(argument, np.ndarray):
                assert argument.flags.c_contiguous, f"argument {i} is not contiguous"
                value = ctypes.c_void_p(argument.ctypes.data)  # the kernel gets the data pointer
            elif isinstance(argument, np.generic):
                value = ctypes.create_string_buffer(argument.tobytes(), argument.nbytes)
            else:
                raise TypeError(f"argument {i} is a {type(argument).__name__}: CuPy would guess its C type")
            keep.append(value)
            pointers[i] = ctypes.addressof(value)
            sizes[i] = ctypes.sizeof(value)
        status = self.launch(grid[0], block[0], pointers, sizes, len(args))
        assert status != -1, f"the kernel takes 14 arguments, the launch passed {len(args)}"
        assert status == 0, f"argument {status - 1} has a different size than the kernel's parameter"


@pytest.fixture(scope="module")
def host_library(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("g++ is not installed: the host shim cannot be built")
    library = tmp_path_factory.mktemp("cuda_shim") / "libfhn_euler_host.so"
    # -ffp-contract=off: no fused multiply-adds, so every operation rounds as NumPy's does
    command = [compiler, "-O2", "-ffp-contract=off", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-shared",
               "-fPIC", f'-DFHN_CUDA_SOURCE="{SOURCE}"', str(SHIM), "-o", str(library)]
    build = subprocess.run(command, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    return ctypes.CDLL(str(library))


@pytest.fixture
def on_host(host_library: ctypes.CDLL, monkeypatch: pytest.MonkeyPatch) -> None:
    """``_euler_cuda.euler_cuda`` with NumPy for CuPy and the host shim for the compiled kernel."""
    monkeypatch.setitem(sys.modules, "cupy", _numpy_as_cupy())
    monkeypatch.setattr(_euler_cuda, "_compiled_function",
                        lambda source, entry: HostKernel(host_library, entry))


#: (applied current, dt, n_steps, save_every); n_steps not a multiple of save_every and n_steps = 0
#: check that the kernel stops at the last saved state
CASES = [("per-trajectory", 0.01, 1000, 10), (0.1, 0.1, 23, 5), (0.05, 0.05, 7, 1), (0.0, 0.1, 0, 3)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("i_app, dt, n_steps, save_every", CASES)
def test_kernel_body_on_the_cpu_equals_numpy(on_host: None, dtype, i_app, dt: float, n_steps: int,
                                             save_every: int) -> None:
    rng = np.random.default_rng(7)
    n = _euler_cuda.THREADS_PER_BLOCK + 44  # two blocks, the last one partial
    u0, w0 = rng.uniform(0.0, 1.0, n), rng.uniform(0.0, 0.18, n)
    if i_app == "per-trajectory":
        i_app = rng.uniform(0.0, 0.12, n)
    U, W = _euler_cuda.euler_cuda(FHN, u0, w0, i_app, dt=dt, n_steps=n_steps, save_every=save_every,
                                  dtype=np.dtype(dtype), to_host=True)
    expected = euler_trajectories(FHN, u0, w0, i_app, dt=dt, n_steps=n_steps, save_every=save_every,
                                  backend="numpy", dtype=dtype)
    for actual, reference in zip((U, W), expected):
        assert actual.dtype == dtype and actual.shape == (n, n_saved_states(n_steps, save_every))
        np.testing.assert_array_equal(actual, reference)
    if n_steps:
        assert np.abs(U[:, -1] - U[:, 0]).max() > 1e-3  # the states moved: not a copy of the input


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_idle_threads_write_nothing(host_library: ctypes.CDLL, dtype) -> None:
    """Blocks of 32 over 70 trajectories, plus one surplus block: 26 + 32 threads past the end, whose
    bounds check must keep them off the guard cells around the output."""
    n, n_steps, save_every, block, guard = 70, 12, 4, 32, 64
    n_saved = n_saved_states(n_steps, save_every)
    rng = np.random.default_rng(3)
    u0, w0, i_app = (rng.uniform(lo, hi, n).astype(dtype) for lo, hi in ((0, 1), (0, 0.18), (0, 0.12)))
    memory = {name: np.full(2 * guard + n_saved * n, np.nan, dtype=dtype) for name in "UW"}
    U, W = (memory[name][guard:guard + n_saved * n].reshape(n_saved, n) for name in "UW")
    constants = (dtype(c) for c in KERNEL.constants(FHN))
    kernel = HostKernel(host_library, KERNEL.entry_points[np.dtype(dtype).name])
    kernel(((n + block - 1) // block + 1,), (block,),
           (u0, w0, i_app, U, W, np.int64(n), np.int32(n_saved), np.int32(save_every), dtype(0.1), *constants))
    for name, output in (("U", U), ("W", W)):
        assert np.isnan(memory[name][:guard]).all() and np.isnan(memory[name][-guard:]).all(), name
    expected = euler_trajectories(FHN, u0, w0, i_app, dt=0.1, n_steps=n_steps, save_every=save_every,
                                  backend="numpy", dtype=dtype)
    np.testing.assert_array_equal(U.T, expected[0])
    np.testing.assert_array_equal(W.T, expected[1])


# ------------------------------------------------------------------------------------ GPU only


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_kernel_without_fused_multiply_add_equals_numpy_bitwise(dtype, monkeypatch: pytest.MonkeyPatch,
                                                                    ) -> None:
    """On the device, compiled by CuPy with --fmad=false, the kernel must reproduce NumPy exactly; the
    production build contracts u + dt * du into FMAs, hence the tolerance of test_euler's GPU test."""
    reason = _euler_cuda.cuda_unavailable_reason()
    if reason is not None:
        pytest.skip(f"no CUDA here: {reason}")
    import cupy

    def compile_without_fma(source: str, entry: str):
        code = (_euler_cuda.CUDA_SOURCE_DIR / source).read_text()
        return cupy.RawModule(code=code, options=("--fmad=false",)).get_function(entry)

    monkeypatch.setattr(_euler_cuda, "_compiled_function", compile_without_fma)
    rng = np.random.default_rng(11)
    n = 3 * _euler_cuda.THREADS_PER_BLOCK + 5
    u0, w0, i_app = rng.uniform(0.0, 1.0, n), rng.uniform(0.0, 0.18, n), rng.uniform(0.0, 0.12, n)
    actual = euler_trajectories(FHN, u0, w0, i_app, dt=0.01, n_steps=1000, save_every=10, backend="cuda",
                                dtype=dtype)
    expected = euler_trajectories(FHN, u0, w0, i_app, dt=0.01, n_steps=1000, save_every=10, backend="numpy",
                                  dtype=dtype)
    for a, e in zip(actual, expected):
        np.testing.assert_array_equal(a, e)
