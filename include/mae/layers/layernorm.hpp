// mae/layers/layernorm.hpp — LayerNorm over the last dimension (eps 1e-6 in every MAE preset).
#ifndef MAE_LAYERS_LAYERNORM_HPP
#define MAE_LAYERS_LAYERNORM_HPP

#include "../core/common.hpp"
#include "../kernels/arch.hpp"
#include "../kernels/elementwise.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

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
  using kernels::sum16;
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

// dinp, dweight, dbias +=; with dinp_from, dinp = dinp_from + (the same as dinp += after a copy
// of dinp_from into dinp, bit for bit, in one pass: the gradient of a residual path that
// joins the normalized one; dinp_from may be dinp)
struct LayerNormPartials;  // kernels::thread_buffer tag
template <class S>
inline void layernorm_backward(S* dinp, S* dweight, S* dbias, const S* dout, const S* inp, const S* weight,
                               const S* mean, const S* rstd, Index rows, Index C, const S* dinp_from = nullptr) {
  using kernels::sum16;
  // One pass over the rows, in fixed chunks: each chunk also sums its rows' share of dweight
  // and dbias into its own partial sums, added up in chunk order at the end (the chunks do
  // not depend on the thread count, so neither do the results).
  const Index rc = chunk_size(rows, kRowChunk), chunks = num_chunks(rows, rc);
  S* partial = kernels::thread_buffer<LayerNormPartials, S>(chunks * 2 * C);  // per chunk: dweight (C), dbias (C)
#pragma omp parallel for schedule(static)
  for (Index c = 0; c < chunks; ++c) {
    S* pw = partial + c * 2 * C;
    S* pb = pw + C;
    std::fill(pw, pw + 2 * C, S(0));
    for (Index r = c * rc; r < std::min(rows, (c + 1) * rc); ++r) {
      const S* x = inp + r * C;
      const S* dy = dout + r * C;
      S* dx = dinp + r * C;
      const S m = mean[r], s = rstd[r];
      // forward: y = norm * weight + bias, norm = (x - mean) * rstd
      // => dx += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)),  dnorm = dy * weight
      const S dnorm_mean = sum16<S>(C, [&](Index i) { return dy[i] * weight[i]; }) / static_cast<S>(C);
      const S dnorm_norm_mean =
          sum16<S>(C, [&](Index i) { return dy[i] * weight[i] * (x[i] - m) * s; }) / static_cast<S>(C);
      using Row = Eigen::Array<S, 1, Eigen::Dynamic>;
      const Eigen::Map<const Row> xr(x, C), dyr(dy, C), wr(weight, C);
      const auto norm = (xr - m) * s;
      if (dinp_from)  // dx = the residual's gradient + this one: the copy fused in
        Eigen::Map<Row>(dx, C) =
            Eigen::Map<const Row>(dinp_from + r * C, C) + (dyr * wr - dnorm_mean - norm * dnorm_norm_mean) * s;
      else
        Eigen::Map<Row>(dx, C) += (dyr * wr - dnorm_mean - norm * dnorm_norm_mean) * s;
      // => dweight += sum over rows of dy * norm,  dbias += sum over rows of dy
      Eigen::Map<Row>(pw, C) += dyr * norm;
      Eigen::Map<Row>(pb, C) += dyr;
    }
  }
  for (Index c = 0; c < chunks; ++c)
    for (Index i = 0; i < C; ++i) {
      dweight[i] += partial[c * 2 * C + i];
      dbias[i] += partial[c * 2 * C + C + i];
    }
}

}  // namespace mae

#endif  // MAE_LAYERS_LAYERNORM_HPP
