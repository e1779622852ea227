// Forward Euler for the FitzHugh-Nagumo model: one GPU thread per trajectory.
//
// Compiled at run time by CuPy (NVRTC) from fhn_automl/physics/_euler_cuda.py; two extern "C"
// entry points (float32, float64) wrap one template so the launcher needs no C++ name mangling.
//
//   U_{n+1} = U_n + dt * k (U_n (U_n - alpha)(1 - U_n) - W_n + I)        (thesis eq. 3.1)
//   W_{n+1} = W_n + dt * eps (beta U_n - gamma W_n)                      (thesis eq. 3.2)
//
// Memory layout: the saved states are time-major, U[row * n + i] for saved row `row` of trajectory
// `i`. Consecutive threads (consecutive i) therefore write consecutive addresses at every save: the
// stores of a warp coalesce into full 128-byte transactions. Each thread reads its initial state and
// current once and keeps the state in registers between saves, so the kernel's only global traffic
// is 3 loads and 2 * n_saved stores per trajectory.

template <typename T>
__device__ __forceinline__ void fhn_euler_trajectory(
    const T* __restrict__ u0, const T* __restrict__ w0, const T* __restrict__ i_app,
    T* __restrict__ U, T* __restrict__ W,
    const long long n, const int n_saved, const int save_every, const T dt,
    const T k, const T alpha, const T eps, const T beta, const T gamma)
{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) {
        return;
    }
    T u = u0[i];
    T w = w0[i];
    const T current = i_app[i];
    U[i] = u;
    W[i] = w;
    // Steps after the last saved state change nothing anyone sees, so the loop runs
    // (n_saved - 1) * save_every steps: no modulo test inside the hot loop.
    for (int row = 1; row < n_saved; ++row) {
        for (int step = 0; step < save_every; ++step) {
            const T du = k * (u * (u - alpha) * (T(1) - u) - w + current);
            const T dw = eps * (beta * u - gamma * w);
            u += dt * du;
            w += dt * dw;
        }
        U[(long long)row * n + i] = u;
        W[(long long)row * n + i] = w;
    }
}

extern "C" __global__ void fhn_euler_f32(
    const float* __restrict__ u0, const float* __restrict__ w0, const float* __restrict__ i_app,
    float* __restrict__ U, float* __restrict__ W,
    const long long n, const int n_saved, const int save_every, const float dt,
    const float k, const float alpha, const float eps, const float beta, const float gamma)
{
    fhn_euler_trajectory<float>(u0, w0, i_app, U, W, n, n_saved, save_every, dt, k, alpha, eps, beta, gamma);
}

extern "C" __global__ void fhn_euler_f64(
    const double* __restrict__ u0, const double* __restrict__ w0, const double* __restrict__ i_app,
    double* __restrict__ U, double* __restrict__ W,
    const long long n, const int n_saved, const int save_every, const double dt,
    const double k, const double alpha, const double eps, const double beta, const double gamma)
{
    fhn_euler_trajectory<double>(u0, w0, i_app, U, W, n, n_saved, save_every, dt, k, alpha, eps, beta, gamma);
}
