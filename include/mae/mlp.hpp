// mae/mlp.hpp — the transformer MLP: fc1 (D -> hidden), exact-erf GELU, fc2 (hidden -> D).
#ifndef MAE_MLP_HPP
#define MAE_MLP_HPP

#include "common.hpp"
#include "linear.hpp"

#include <unsupported/Eigen/SpecialFunctions>  // vectorized erf

#include <cmath>

namespace mae {

template <class S>
struct MlpParams {
  LinearParams<S> fc1;  // (hidden, D), (hidden)
  LinearParams<S> fc2;  // (D, hidden), (D)
};

// Elementwise work runs on fixed blocks of 16 values, each one Eigen fixed-size array
// expression (vectorized erf and exp for float; double uses the scalar functions). Every value
// goes through the same code whatever the buffer's alignment or the thread count (a plain
// Eigen map would compute an unaligned head with scalar code), so results are reproducible.
inline constexpr Index kBlock16 = 16;

template <class F>
inline void for_each_block16(Index n, F&& f) {
  const Index blocks = n / kBlock16;
#pragma omp parallel for schedule(static)
  for (Index b = 0; b < blocks; ++b) f(b * kBlock16, kBlock16);
  if (n % kBlock16) f(blocks * kBlock16, n % kBlock16);
}

// Loads m <= 16 values into a block (zero padded) and stores a block back.
template <class S>
inline Eigen::Array<S, kBlock16, 1> load16(const S* p, Index m) {
  Eigen::Array<S, kBlock16, 1> b = Eigen::Array<S, kBlock16, 1>::Zero();
  for (Index i = 0; i < m; ++i) b[i] = p[i];
  return b;
}
template <class S>
inline void store16(S* p, const Eigen::Array<S, kBlock16, 1>& b, Index m) {
  for (Index i = 0; i < m; ++i) p[i] = b[i];
}

// out = 0.5 * x * (1 + erf(x / sqrt(2)))   (nn.GELU(), not the tanh approximation)
template <class S>
inline void gelu_forward(S* out, const S* inp, Index n) {
  const S inv_sqrt2 = static_cast<S>(0.70710678118654752440);
  for_each_block16(n, [&](Index i, Index m) {
    const Eigen::Array<S, kBlock16, 1> x = load16(inp + i, m);
    store16<S>(out + i, S(0.5) * x * (S(1) + (x * inv_sqrt2).erf()), m);
  });
}

template <class S>
inline void gelu_backward(S* dinp, const S* inp, const S* dout, Index n) {
  // forward: out = 0.5 x (1 + erf(x/sqrt2))
  // => dx += dout * (0.5 (1 + erf(x/sqrt2)) + x * exp(-x^2/2) / sqrt(2 pi))
  const S inv_sqrt2 = static_cast<S>(0.70710678118654752440);
  const S inv_sqrt2pi = static_cast<S>(0.39894228040143267794);
  for_each_block16(n, [&](Index i, Index m) {
    const Eigen::Array<S, kBlock16, 1> x = load16(inp + i, m), dy = load16(dout + i, m), dx = load16(dinp + i, m);
    store16<S>(dinp + i, dx + dy * (S(0.5) * (S(1) + (x * inv_sqrt2).erf()) + x * (S(-0.5) * x.square()).exp() * inv_sqrt2pi), m);
  });
}

}  // namespace mae

#endif  // MAE_MLP_HPP
