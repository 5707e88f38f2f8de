// mae/layernorm.hpp — LayerNorm over the last dimension (eps 1e-6 in every MAE preset).
#ifndef MAE_LAYERNORM_HPP
#define MAE_LAYERNORM_HPP

#include "common.hpp"

#include <algorithm>
#include <cmath>

namespace mae {

inline constexpr double kLayerNormEps = 1e-6;

template <class S>
struct LayerNormParams {
  S* weight = nullptr;  // (C)
  S* bias = nullptr;    // (C)
};

// out (rows, C) = (inp - mean) * rstd * weight + bias; caches mean (rows), rstd (rows).
// The variance is the biased one (divide by C), as torch.nn.LayerNorm.
// weight 1, bias 0
template <class S>
inline void init_layernorm(LayerNormParams<S>& n, Index dim) {
  std::fill(n.weight, n.weight + dim, S(1));
  zero(n.bias, dim);
}

template <class S>
inline void layernorm_forward(S* out, S* mean, S* rstd, const S* inp, const S* weight, const S* bias, Index rows,
                              Index C, double eps = kLayerNormEps) {
#pragma omp parallel for schedule(static)
  for (Index r = 0; r < rows; ++r) {
    const S* x = inp + r * C;
    S* y = out + r * C;
    const S m = sum16<S>(C, [&](Index i) { return x[i]; }) / static_cast<S>(C);
    const S v = sum16<S>(C, [&](Index i) { return (x[i] - m) * (x[i] - m); }) / static_cast<S>(C);
    const S s = S(1) / std::sqrt(v + static_cast<S>(eps));
    for (Index i = 0; i < C; ++i) y[i] = (x[i] - m) * s * weight[i] + bias[i];
    mean[r] = m;
    rstd[r] = s;
  }
}

template <class S>
inline void layernorm_backward(S* dinp, S* dweight, S* dbias, const S* dout, const S* inp, const S* weight,
                               const S* mean, const S* rstd, Index rows, Index C) {
  const Index cc = chunk_size(C, kChannelChunk), chunks = num_chunks(C, cc);
  // (the two parts below are independent: one parallel region, no barrier between them)
#pragma omp parallel
  {
    // forward: y = norm * weight + bias, norm = (x - mean) * rstd
    // => dx += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)),  dnorm = dy * weight
#pragma omp for schedule(static) nowait
    for (Index r = 0; r < rows; ++r) {
      const S* x = inp + r * C;
      const S* dy = dout + r * C;
      S* dx = dinp + r * C;
      const S m = mean[r], s = rstd[r];
      const S dnorm_mean = sum16<S>(C, [&](Index i) { return dy[i] * weight[i]; }) / static_cast<S>(C);
      const S dnorm_norm_mean =
          sum16<S>(C, [&](Index i) { return dy[i] * weight[i] * (x[i] - m) * s; }) / static_cast<S>(C);
      for (Index i = 0; i < C; ++i) {
        const S norm = (x[i] - m) * s;
        dx[i] += (dy[i] * weight[i] - dnorm_mean - norm * dnorm_norm_mean) * s;
      }
    }
    // => dweight += sum over rows of dy * norm,  dbias += sum over rows of dy
    // (threads own chunks of channels, each summing over every row in order)
#pragma omp for schedule(static)
    for (Index c = 0; c < chunks; ++c) {
      const Index i0 = c * cc, ni = std::min(cc, C - i0);
      for (Index r = 0; r < rows; ++r) {
        const S m = mean[r], s = rstd[r];
        const S* x = inp + r * C;
        const S* dy = dout + r * C;
        for (Index i = i0; i < i0 + ni; ++i) {
          dweight[i] += dy[i] * (x[i] - m) * s;
          dbias[i] += dy[i];
        }
      }
    }
  }
}

}  // namespace mae

#endif  // MAE_LAYERNORM_HPP
