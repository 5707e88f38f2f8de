// mae/kernels/elementwise.hpp — elementwise work and sums in fixed blocks of 16 values, so
// that every value goes through the same vector code whatever the buffer's alignment, its
// length or the thread count (results are reproducible bit for bit).
#ifndef MAE_KERNELS_ELEMENTWISE_HPP
#define MAE_KERNELS_ELEMENTWISE_HPP

#include "../core/common.hpp"

namespace mae::kernels {

// Elementwise work runs on fixed blocks of 16 values, each one Eigen fixed-size array
// expression (vectorized erf, exp, sqrt for float). Every value goes through the same code
// whatever the buffer's alignment or the thread count (a plain Eigen map would compute an
// unaligned head with scalar code, maybe contracted differently), so results are reproducible.
inline constexpr Index kBlock16 = 16;
template <class S>
using Block16 = Eigen::Array<S, kBlock16, 1>;

// f(i, m) for the blocks [i, i + m) of [0, n), m = 16 but for a last partial block.
template <class F>
inline void for_each_block16(Index n, F&& f) {
  const Index blocks = n / kBlock16;
  parallel_for(blocks, [&](Index b) { f(b * kBlock16, kBlock16); });
  if (n % kBlock16) f(blocks * kBlock16, n % kBlock16);
}

// Loads m <= 16 values into a block (zero padded) and stores a block back.
template <class S>
inline Block16<S> load16(const S* p, Index m) {
  if (m == kBlock16) return Eigen::Map<const Block16<S>>(p);
  Block16<S> b = Block16<S>::Zero();
  for (Index i = 0; i < m; ++i) b[i] = p[i];
  return b;
}
template <class S>
inline void store16(S* p, const Block16<S>& b, Index m) {
  if (m == kBlock16) {
    Eigen::Map<Block16<S>> out(p);
    out = b;
    return;
  }
  for (Index i = 0; i < m; ++i) p[i] = b[i];
}

// f(0) + ... + f(n-1) as 16 interleaved partial sums (term i goes to sum i % 16) added in a
// fixed tree: it vectorizes, which a plain running sum cannot without reassociation, and the
// order depends on n only, so results stay reproducible.
template <class S, class F>
inline S sum16(Index n, F&& f) {
  S acc[kBlock16] = {};
  Index i = 0;
  for (; i + kBlock16 <= n; i += kBlock16)
    for (Index j = 0; j < kBlock16; ++j) acc[j] += f(i + j);
  for (Index j = 0; i + j < n; ++j) acc[j] += f(i + j);
  for (Index w = kBlock16 / 2; w > 0; w /= 2)
    for (Index j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0];
}

}  // namespace mae::kernels

#endif  // MAE_KERNELS_ELEMENTWISE_HPP
