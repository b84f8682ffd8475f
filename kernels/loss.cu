// Softmax cross-entropy on logits (N, K), one thread per row.
// loss_rows[n] = log(sum_k exp(z_k - m)) - (z_label - m), m = max_k z_k;
// dlogits[n, k] = (softmax_k - [k == label]) / total.  The caller sums loss_rows
// and divides by total (N for the mean, the whole batch's size for a shard).
#include "common.cuh"

template <typename T>
__global__ void softmax_xent(const T* __restrict__ logits, const int* __restrict__ labels,
                             T* __restrict__ loss_rows, T* __restrict__ dlogits,
                             int N, int K, int total) {
  GRID_STRIDE_LOOP(n, N) {
    const T* row = logits + n * K;
    T m = row[0];
    // A NaN logit makes m NaN, as numpy's max does (row[k] > m alone would skip it).
    for (int k = 1; k < K; ++k) m = (row[k] > m || row[k] != row[k]) ? row[k] : m;
    T sum = T(0);
    for (int k = 0; k < K; ++k) sum += exp(row[k] - m);
    const int label = labels[n];
    loss_rows[n] = log(sum) - (row[label] - m);
    for (int k = 0; k < K; ++k)
      dlogits[n * K + k] = (exp(row[k] - m) / sum - (k == label ? T(1) : T(0))) / T(total);
  }
}
