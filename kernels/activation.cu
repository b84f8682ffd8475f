// Bias + ReLU after a GEMM, and ReLU backward, with the layout change folded in.
// The GEMM output z is read at z[f * SF + n * SN + p]:
//   convolution: z is (F, N*P), so SF = N*P, SN = P   (P = OH*OW)
//   dense:       z is (N, F),   so SF = 1,   SN = F,  P = 1
// and the NCHW output is y[(n * F + f) * P + p], i = (n, f, p).
#include "common.cuh"

template <typename T>
__global__ void bias_relu_fwd(const T* __restrict__ z, const T* __restrict__ b,
                              T* __restrict__ y, int total, int F, int P, int SF,
                              int SN, int relu) {
  GRID_STRIDE_LOOP(i, total) {
    const int p = i % P;
    const int f = (i / P) % F;
    const int n = i / (P * F);
    const T v = z[f * SF + n * SN + p] + b[f];
    y[i] = (relu && v < T(0)) ? T(0) : v;
  }
}

// dz[f * SF + n * SN + p] = dy[i] where y[i] > 0 (or everywhere if !relu).
// Each dz element is written by exactly one thread.
template <typename T>
__global__ void relu_bwd(const T* __restrict__ dy, const T* __restrict__ y,
                         T* __restrict__ dz, int total, int F, int P, int SF,
                         int SN, int relu) {
  GRID_STRIDE_LOOP(i, total) {
    const int p = i % P;
    const int f = (i / P) % F;
    const int n = i / (P * F);
    dz[f * SF + n * SN + p] = (relu && !(y[i] > T(0))) ? T(0) : dy[i];
  }
}
