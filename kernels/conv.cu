// im2col / col2im for convolution, input laid out (C, N, H, W).
// Column layout: col[((((c * KH + ky) * KW + kx) * N + n) * OH + oh) * OW + ow],
// i.e. a (C*KH*KW, N*OH*OW) matrix, so forward is one GEMM: w2d @ col.
// PT/PL are the top/left padding; bottom/right padding is implied by OH/OW.
#include "common.cuh"

template <typename T>
__global__ void im2col(const T* __restrict__ x, T* __restrict__ col, int total,
                       int N, int H, int W, int KH, int KW, int SH, int SW,
                       int PT, int PL, int OH, int OW) {
  GRID_STRIDE_LOOP(i, total) {
    int t = i;
    const int ow = t % OW; t /= OW;
    const int oh = t % OH; t /= OH;
    const int n = t % N;   t /= N;
    const int kx = t % KW; t /= KW;
    const int ky = t % KH;
    const int c = t / KH;
    const int y = oh * SH - PT + ky;
    const int xx = ow * SW - PL + kx;
    const bool inside = y >= 0 && y < H && xx >= 0 && xx < W;
    col[i] = inside ? x[((c * N + n) * H + y) * W + xx] : T(0);
  }
}

// A gather: each thread owns one input element and sums the columns that read
// it, so there are no atomics and the result is deterministic.
template <typename T>
__global__ void col2im(const T* __restrict__ col, T* __restrict__ dx, int total,
                       int N, int H, int W, int KH, int KW, int SH, int SW,
                       int PT, int PL, int OH, int OW) {
  GRID_STRIDE_LOOP(i, total) {
    int t = i;
    const int w = t % W; t /= W;
    const int h = t % H; t /= H;
    const int n = t % N;
    const int c = t / N;
    T sum = T(0);
    for (int ky = 0; ky < KH; ++ky) {
      const int ys = h + PT - ky;  // = oh * SH for the window that reads (h, w) at ky
      if (ys < 0 || ys % SH != 0 || ys / SH >= OH) continue;
      for (int kx = 0; kx < KW; ++kx) {
        const int xs = w + PL - kx;
        if (xs < 0 || xs % SW != 0 || xs / SW >= OW) continue;
        sum += col[((((c * KH + ky) * KW + kx) * N + n) * OH + ys / SH) * OW + xs / SW];
      }
    }
    dx[i] = sum;
  }
}
