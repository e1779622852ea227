// Runs the CUDA Euler kernel's source on the CPU, so tests check its arithmetic, indexing and
// bounds check on machines without a GPU (tests/physics/test_cuda_source.py builds and loads it).
//
// The .cu file is included as it is: the CUDA qualifiers become plain C++ and the built-in thread
// coordinates become globals that the launcher sets before calling the kernel once per "thread",
// block by block, like a grid executed one thread at a time. g++ understands __restrict__ itself.
//
// Launch mirrors the CUDA driver (cuLaunchKernel): params[i] points at argument i's bytes, and the
// caller also says how many bytes it packed for each argument, so an argument list that disagrees
// with the kernel's signature (count, or an int32 where the kernel takes a long long) is reported
// instead of being read as garbage.
//
// Build: g++ -O2 -ffp-contract=off -shared -fPIC -DFHN_CUDA_SOURCE='"path/to/fhn_euler.cu"'
// (-ffp-contract=off: no fused multiply-adds, so each operation rounds exactly as NumPy's does).

#include <cstddef>

struct ShimDim3 {
    unsigned int x, y, z;
};

static ShimDim3 threadIdx, blockIdx, blockDim, gridDim;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

#include FHN_CUDA_SOURCE

namespace {

// Argument i as type A, after checking the caller packed exactly sizeof(A) bytes for it.
template <typename A>
A argument(void** params, const std::size_t* sizes, int i, int& mismatch) {
    if (sizes[i] != sizeof(A)) {
        mismatch = i + 1;
        return A();
    }
    return *static_cast<const A*>(params[i]);
}

using KernelF32 = void (*)(const float*, const float*, const float*, float*, float*, long long, int, int,
                           float, float, float, float, float, float);
using KernelF64 = void (*)(const double*, const double*, const double*, double*, double*, long long, int,
                           int, double, double, double, double, double, double);

// Returns 0 after running every thread of the 1-D grid; -1 for a wrong argument count; i + 1 when
// argument i has the wrong size (then nothing runs).
template <typename T, typename Kernel>
int launch(Kernel kernel, unsigned int grid, unsigned int block, void** params, const std::size_t* sizes,
           int n_params) {
    if (n_params != 14) {
        return -1;
    }
    int mismatch = 0;
    const T* u0 = argument<const T*>(params, sizes, 0, mismatch);
    const T* w0 = argument<const T*>(params, sizes, 1, mismatch);
    const T* i_app = argument<const T*>(params, sizes, 2, mismatch);
    T* U = argument<T*>(params, sizes, 3, mismatch);
    T* W = argument<T*>(params, sizes, 4, mismatch);
    const long long n = argument<long long>(params, sizes, 5, mismatch);
    const int n_saved = argument<int>(params, sizes, 6, mismatch);
    const int save_every = argument<int>(params, sizes, 7, mismatch);
    T scalars[6];
    for (int j = 0; j < 6; ++j) {
        scalars[j] = argument<T>(params, sizes, 8 + j, mismatch);
    }
    if (mismatch) {
        return mismatch;
    }
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    for (unsigned int b = 0; b < grid; ++b) {
        for (unsigned int t = 0; t < block; ++t) {
            blockIdx = {b, 0, 0};
            threadIdx = {t, 0, 0};
            kernel(u0, w0, i_app, U, W, n, n_saved, save_every, scalars[0], scalars[1], scalars[2], scalars[3],
                   scalars[4], scalars[5]);
        }
    }
    return 0;
}

}  // namespace

extern "C" int shim_launch_fhn_euler_f32(unsigned int grid, unsigned int block, void** params,
                                         const std::size_t* sizes, int n_params) {
    return launch<float, KernelF32>(fhn_euler_f32, grid, block, params, sizes, n_params);
}

extern "C" int shim_launch_fhn_euler_f64(unsigned int grid, unsigned int block, void** params,
                                         const std::size_t* sizes, int n_params) {
    return launch<double, KernelF64>(fhn_euler_f64, grid, block, params, sizes, n_params);
}
