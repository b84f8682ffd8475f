// What every kernel in kernels/*.cu shares.  Compiled by NVRTC (CuPy), by nvcc
// (the compile test) and by the host C++ compiler (the cudasim backend, which
// includes host/cuda_host.h first).  Kernels use no shared memory and no
// __syncthreads(): each thread owns its outputs, so the simulator can run the
// threads of a block one after another.
#ifndef MINICNN_COMMON_CUH
#define MINICNN_COMMON_CUH

// One thread per output element; a grid smaller than n loops over the rest.
#define GRID_STRIDE_LOOP(i, n)                                        \
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < (n);        \
       i += blockDim.x * gridDim.x)

#endif  // MINICNN_COMMON_CUH
