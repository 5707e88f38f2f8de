// mae/pos_embed.hpp — the fixed 2-D sin-cos position table of util/pos_embed.py.
//
// Computed in double, then cast. Row 0 (the cls token) is zero. For the patch at grid row r,
// column c (row 1 + r*G + c), with omega_k = 1 / 10000^(k / (D/4)), k = 0..D/4-1:
//   [0, D/4) = sin(c omega), [D/4, D/2) = cos(c omega),
//   [D/2, 3D/4) = sin(r omega), [3D/4, D) = cos(r omega).
// The first half encodes the COLUMN (the official code names it emb_h, but feeds it the
// first output of np.meshgrid(grid_w, grid_h), which varies along columns).
#ifndef MAE_POS_EMBED_HPP
#define MAE_POS_EMBED_HPP

#include "common.hpp"

#include <cmath>

namespace mae {

// out (1 + G*G, D)
template <class S>
inline void sincos_pos_embed_2d(S* out, Index D, Index G) {
  if (D % 4 != 0) throw Error("sin-cos position table: width " + std::to_string(D) + " is not divisible by 4");
  const Index Q = D / 4;
  zero(out, (1 + G * G) * D);
  for (Index r = 0; r < G; ++r)
    for (Index c = 0; c < G; ++c) {
      S* row = out + (1 + r * G + c) * D;
      for (Index k = 0; k < Q; ++k) {
        const double omega = 1.0 / std::pow(10000.0, static_cast<double>(k) / static_cast<double>(Q));
        const double wc = static_cast<double>(c) * omega, wr = static_cast<double>(r) * omega;
        row[k] = static_cast<S>(std::sin(wc));
        row[Q + k] = static_cast<S>(std::cos(wc));
        row[2 * Q + k] = static_cast<S>(std::sin(wr));
        row[3 * Q + k] = static_cast<S>(std::cos(wr));
      }
    }
}

}  // namespace mae

#endif  // MAE_POS_EMBED_HPP
