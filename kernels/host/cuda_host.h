// The CUDA built-ins the kernels use, for compiling kernels/*.cu with the host
// C++ compiler (the cudasim backend).  A launch runs every block and every
// thread of the grid: blocks in parallel (OpenMP), the threads of a block one
// after another.  That is exact for kernels whose threads are independent,
// which is all of ours; shared memory and __syncthreads() cannot be simulated
// that way, so using them is a compile error here rather than a wrong answer.
#ifndef MINICNN_CUDA_HOST_H
#define MINICNN_CUDA_HOST_H

#include <cmath>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static_assert(false, "cudasim: shared memory cannot be simulated");
void __syncthreads() = delete;  // see above

using std::exp;
using std::log;
using std::sqrt;

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

// Per OS thread, so that blocks can run on several cores at once.
static thread_local dim3 gridDim, blockDim, blockIdx, threadIdx;

template <class Kernel>
void sim_launch(unsigned grid, unsigned block, Kernel kernel) {
#pragma omp parallel for schedule(static)
  for (long b = 0; b < (long)grid; ++b) {
    gridDim = dim3(grid);
    blockDim = dim3(block);
    blockIdx = dim3((unsigned)b);
    for (unsigned t = 0; t < block; ++t) {
      threadIdx = dim3(t);
      kernel();
    }
  }
}

#endif  // MINICNN_CUDA_HOST_H
