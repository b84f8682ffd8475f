// Max pooling over planes of H x W pixels (the C*N planes of a (C, N, H, W) image).
// argmax holds the flat index h * W + w of the first (row-major) maximum of each
// window; padding is never a candidate; the first NaN wins, as in numpy.argmax.
#include "common.cuh"

template <typename T>
__global__ void maxpool_fwd(const T* __restrict__ x, T* __restrict__ y,
                            int* __restrict__ argmax, int total, int H, int W,
                            int KH, int KW, int SH, int SW, int PT, int PL,
                            int OH, int OW) {
  GRID_STRIDE_LOOP(i, total) {
    const int ow = i % OW;
    const int oh = (i / OW) % OH;
    const T* plane = x + (i / (OW * OH)) * H * W;
    int best = -1;
    T best_value = T(0);
    for (int ky = 0; ky < KH; ++ky) {
      const int r = oh * SH - PT + ky;
      if (r < 0 || r >= H) continue;
      for (int kx = 0; kx < KW; ++kx) {
        const int s = ow * SW - PL + kx;
        if (s < 0 || s >= W) continue;
        const T v = plane[r * W + s];
        // v != v: v is NaN, and it beats a number (but not an earlier NaN).
        if (best < 0 || v > best_value || (v != v && best_value == best_value)) {
          best = r * W + s;
          best_value = v;
        }
      }
    }
    y[i] = best_value;
    argmax[i] = best;
  }
}

// A gather: each thread owns one input element and sums dy over the windows
// that contain it and chose it as their maximum.
template <typename T>
__global__ void maxpool_bwd(const T* __restrict__ dy, const int* __restrict__ argmax,
                            T* __restrict__ dx, int total, int H, int W, int KH,
                            int KW, int SH, int SW, int PT, int PL, int OH,
                            int OW) {
  GRID_STRIDE_LOOP(i, total) {
    const int w = i % W;
    const int h = (i / W) % H;
    const int plane = (i / (W * H)) * OH * OW;
    // windows oh with oh*SH - PT <= h <= oh*SH - PT + KH - 1
    const int oh_lo = h + PT - KH + 1 > 0 ? (h + PT - KH + 1 + SH - 1) / SH : 0;
    const int oh_hi = (h + PT) / SH < OH - 1 ? (h + PT) / SH : OH - 1;
    const int ow_lo = w + PL - KW + 1 > 0 ? (w + PL - KW + 1 + SW - 1) / SW : 0;
    const int ow_hi = (w + PL) / SW < OW - 1 ? (w + PL) / SW : OW - 1;
    T sum = T(0);
    for (int oh = oh_lo; oh <= oh_hi; ++oh)
      for (int ow = ow_lo; ow <= ow_hi; ++ow)
        if (argmax[plane + oh * OW + ow] == h * W + w) sum += dy[plane + oh * OW + ow];
    dx[i] = sum;
  }
}
