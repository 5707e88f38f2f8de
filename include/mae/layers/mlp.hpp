// mae/layers/mlp.hpp — the transformer MLP: fc1 (D -> hidden), exact-erf GELU, fc2 (hidden -> D).
#ifndef MAE_LAYERS_MLP_HPP
#define MAE_LAYERS_MLP_HPP

#include "../core/common.hpp"
#include "../kernels/elementwise.hpp"
#include "linear.hpp"

#include <unsupported/Eigen/SpecialFunctions>  // vectorized erf

#include <cmath>

namespace mae {

template <class S>
struct MlpParams {
  LinearParams<S> fc1;  // (hidden, D), (hidden)
  LinearParams<S> fc2;  // (D, hidden), (D)
};

// GCC 12 with AVX-512 warns "'__Y' is used uninitialized" inside Eigen's vectorized erf/exp
// (its intrinsics start from _mm512_undefined_ps, which GCC 12 flags by mistake): silenced for
// these two functions only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

// out = 0.5 * x * (1 + erf(x / sqrt(2)))   (nn.GELU(), not the tanh approximation)
template <class S>
inline void gelu_forward(S* out, const S* inp, Index n) {
  using namespace kernels;
  const S inv_sqrt2 = static_cast<S>(0.70710678118654752440);
  for_each_block16(n, [&](Index i, Index m) {
    const Block16<S> x = load16(inp + i, m);
    store16<S>(out + i, S(0.5) * x * (S(1) + (x * inv_sqrt2).erf()), m);
  });
}

template <class S>
inline void gelu_backward(S* dinp, const S* inp, const S* dout, Index n, Grad mode = Grad::accumulate) {
  using namespace kernels;
  // forward: out = 0.5 x (1 + erf(x/sqrt2))
  // => dx += dout * (0.5 (1 + erf(x/sqrt2)) + x * exp(-x^2/2) / sqrt(2 pi))
  const S inv_sqrt2 = static_cast<S>(0.70710678118654752440);
  const S inv_sqrt2pi = static_cast<S>(0.39894228040143267794);
  for_each_block16(n, [&](Index i, Index m) {
    const Block16<S> x = load16(inp + i, m), dy = load16(dout + i, m);
    const Block16<S> dx =
        dy * (S(0.5) * (S(1) + (x * inv_sqrt2).erf()) + x * (S(-0.5) * x.square()).exp() * inv_sqrt2pi);
    store16<S>(dinp + i, mode == Grad::assign ? dx : Block16<S>(load16(dinp + i, m) + dx), m);
  });
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

}  // namespace mae

#endif  // MAE_LAYERS_MLP_HPP
