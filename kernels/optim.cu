// SGD with optional momentum, in place:
//   momentum == 0: p -= lr * g                      (v is not touched)
//   otherwise:     v = momentum * v - lr * g;  p += v
// No __restrict__: with momentum 0 the caller may pass p itself as v.
#include "common.cuh"

template <typename T>
__global__ void sgd_update(T* p, const T* g, T* v, int total, T lr, T momentum) {
  GRID_STRIDE_LOOP(i, total) {
    if (momentum == T(0)) {
      p[i] -= lr * g[i];
    } else {
      const T vi = momentum * v[i] - lr * g[i];
      v[i] = vi;
      p[i] += vi;
    }
  }
}
