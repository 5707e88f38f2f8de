// mae/mlp.hpp — the transformer MLP: fc1 (D -> hidden), exact-erf GELU, fc2 (hidden -> D).
#ifndef MAE_MLP_HPP
#define MAE_MLP_HPP

#include "common.hpp"
#include "linear.hpp"

#include <cmath>

namespace mae {

template <class S>
struct MlpParams {
  LinearParams<S> fc1;  // (hidden, D), (hidden)
  LinearParams<S> fc2;  // (D, hidden), (D)
};

// out = 0.5 * x * (1 + erf(x / sqrt(2)))   (nn.GELU(), not the tanh approximation)
template <class S>
inline void gelu_forward(S* out, const S* inp, Index n) {
  const S inv_sqrt2 = static_cast<S>(0.70710678118654752440);
#pragma omp parallel for schedule(static)
  for (Index i = 0; i < n; ++i) out[i] = S(0.5) * inp[i] * (S(1) + std::erf(inp[i] * inv_sqrt2));
}

template <class S>
inline void gelu_backward(S* dinp, const S* inp, const S* dout, Index n) {
  // forward: out = 0.5 x (1 + erf(x/sqrt2))
  // => dx += dout * (0.5 (1 + erf(x/sqrt2)) + x * exp(-x^2/2) / sqrt(2 pi))
  const S inv_sqrt2 = static_cast<S>(0.70710678118654752440);
  const S inv_sqrt2pi = static_cast<S>(0.39894228040143267794);
#pragma omp parallel for schedule(static)
  for (Index i = 0; i < n; ++i) {
    const S x = inp[i];
    const S cdf = S(0.5) * (S(1) + std::erf(x * inv_sqrt2));
    const S pdf = std::exp(S(-0.5) * x * x) * inv_sqrt2pi;
    dinp[i] += dout[i] * (cdf + x * pdf);
  }
}

}  // namespace mae

#endif  // MAE_MLP_HPP
