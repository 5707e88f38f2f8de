// mae/layers/cross_entropy.hpp — softmax cross-entropy with label smoothing, as timm's
// LabelSmoothingCrossEntropy (smoothing 0 is torch.nn.CrossEntropyLoss):
//
//   logp   = log_softmax(logits)                                    (N, K)
//   loss_n = (1 - s) * -logp[n, y_n] + s * mean_k -logp[n, k]
//   loss   = mean_n loss_n
//
// and with soft targets t (N, K) (mixup / cutmix; timm's SoftTargetCrossEntropy):
//
//   loss   = mean_n sum_k -t[n, k] * logp[n, k]
#ifndef MAE_LAYERS_CROSS_ENTROPY_HPP
#define MAE_LAYERS_CROSS_ENTROPY_HPP

#include "../core/common.hpp"

#include <cmath>
#include <string>

namespace mae {

inline void check_labels(const int* labels, Index N, Index K) {
  for (Index n = 0; n < N; ++n)
    if (labels[n] < 0 || labels[n] >= K)
      throw Error("label " + std::to_string(labels[n]) + " of sample " + std::to_string(n) + " is outside [0, " +
                  std::to_string(K) + ")");
}

// log sum_k exp(z[k]) of one row z (K), in double: log_softmax(z)[k] = z[k] - it.
template <class S>
inline double log_sum_exp(const S* z, Index K) {
  double mx = z[0];
  for (Index k = 1; k < K; ++k) mx = std::max(mx, static_cast<double>(z[k]));
  double sum = 0;
  for (Index k = 0; k < K; ++k) sum += std::exp(z[k] - mx);
  return std::log(sum) + mx;
}

// The class probabilities of one row z (K): probs (K) = softmax(z); returns log_sum_exp(z).
template <class S>
inline double softmax_row(S* probs, const S* z, Index K) {
  const double log_sum = log_sum_exp(z, K);
  for (Index k = 0; k < K; ++k) probs[k] = static_cast<S>(std::exp(z[k] - log_sum));
  return log_sum;
}

// Returns the mean loss; probs (N, K) = softmax(logits) is kept for backward.
template <class S>
inline S cross_entropy_forward(S* probs, const S* logits, const int* labels, Index N, Index K, double smoothing) {
  check_labels(labels, N, K);
  double total = 0;  // sequential over samples: one summation order
  for (Index n = 0; n < N; ++n) {
    const S* z = logits + n * K;
    const double log_sum = softmax_row(probs + n * K, z, K);
    double mean_nlogp = 0;
    for (Index k = 0; k < K; ++k) mean_nlogp += log_sum - z[k];
    mean_nlogp /= static_cast<double>(K);
    total += (1.0 - smoothing) * (log_sum - z[labels[n]]) + smoothing * mean_nlogp;
  }
  return static_cast<S>(total / static_cast<double>(N));
}

// dlogits (N, K) += dloss * d loss / d logits
template <class S>
inline void cross_entropy_backward(S* dlogits, const S* probs, const int* labels, Index N, Index K, double smoothing,
                                   S dloss) {
  // forward: loss = mean_n [(1 - s)(log_sum - z[y]) + s mean_k (log_sum - z[k])]
  // => dz[k] = (p[k] - (1 - s) [k == y] - s / K) / N
  const double scale = static_cast<double>(dloss) / static_cast<double>(N);
  for (Index n = 0; n < N; ++n)
    for (Index k = 0; k < K; ++k) {
      const double target = (k == labels[n] ? 1.0 - smoothing : 0.0) + smoothing / static_cast<double>(K);
      dlogits[n * K + k] += static_cast<S>(scale * (static_cast<double>(probs[n * K + k]) - target));
    }
}

// Soft targets t (N, K): returns the mean loss; probs (N, K) = softmax(logits) for backward.
template <class S, class T>
inline S soft_cross_entropy_forward(S* probs, const S* logits, const T* targets, Index N, Index K) {
  double total = 0;  // sequential over samples: one summation order
  for (Index n = 0; n < N; ++n) {
    const S* z = logits + n * K;
    const double log_sum = softmax_row(probs + n * K, z, K);
    for (Index k = 0; k < K; ++k) total += static_cast<double>(targets[n * K + k]) * (log_sum - z[k]);
  }
  return static_cast<S>(total / static_cast<double>(N));
}

// dlogits (N, K) += dloss * d loss / d logits
template <class S, class T>
inline void soft_cross_entropy_backward(S* dlogits, const S* probs, const T* targets, Index N, Index K, S dloss) {
  // forward: loss = mean_n sum_k t[k] (log_sum - z[k])
  // => dz[k] = (p[k] sum_j t[j] - t[k]) / N
  const double scale = static_cast<double>(dloss) / static_cast<double>(N);
  for (Index n = 0; n < N; ++n) {
    double tsum = 0;
    for (Index k = 0; k < K; ++k) tsum += static_cast<double>(targets[n * K + k]);
    for (Index k = 0; k < K; ++k)
      dlogits[n * K + k] += static_cast<S>(
          scale * (static_cast<double>(probs[n * K + k]) * tsum - static_cast<double>(targets[n * K + k])));
  }
}

}  // namespace mae

#endif  // MAE_LAYERS_CROSS_ENTROPY_HPP
