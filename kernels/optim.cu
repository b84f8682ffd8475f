// Optimizer updates on flat buffers, in place, one thread per parameter; the same
// maths as minicnn/ops/update.py.
#include "common.cuh"

// p -= lr * g
template <typename T>
__global__ void sgd_update(T* __restrict__ p, const T* __restrict__ g, int total, T lr) {
  GRID_STRIDE_LOOP(i, total) p[i] -= lr * g[i];
}

// v = momentum * v - lr * g;  p += v
template <typename T>
__global__ void momentum_update(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ v,
                                int total, T lr, T momentum) {
  GRID_STRIDE_LOOP(i, total) {
    const T vi = momentum * v[i] - lr * g[i];
    v[i] = vi;
    p[i] += vi;
  }
}

// m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;  p -= lr_t m / (sqrt(v) + eps_t)
// (lr_t and eps_t carry Adam's bias corrections, see minicnn/optim.py)
template <typename T>
__global__ void adam_update(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ m,
                            T* __restrict__ v, int total, T lr_t, T beta1, T beta2, T eps_t) {
  GRID_STRIDE_LOOP(i, total) {
    const T mi = beta1 * m[i] + (T(1) - beta1) * g[i];
    const T vi = beta2 * v[i] + (T(1) - beta2) * g[i] * g[i];
    m[i] = mi;
    v[i] = vi;
    p[i] -= lr_t * (mi / (sqrt(vi) + eps_t));
  }
}
