// mae/layers/pos_embed.hpp — the fixed 2-D sin-cos position table of util/pos_embed.py.
//
// Computed in double, then cast. Row 0 (the cls token) is zero. For the patch at grid row r,
// column c (row 1 + r*G + c), with omega_k = 1 / 10000^(k / (D/4)), k = 0..D/4-1:
//   [0, D/4) = sin(c omega), [D/4, D/2) = cos(c omega),
//   [D/2, 3D/4) = sin(r omega), [3D/4, D) = cos(r omega).
// The first half encodes the COLUMN (the official code names it emb_h, but feeds it the
// first output of np.meshgrid(grid_w, grid_h), which varies along columns).
#ifndef MAE_LAYERS_POS_EMBED_HPP
#define MAE_LAYERS_POS_EMBED_HPP

#include "../core/common.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

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

// --- another resolution: util/pos_embed.py's interpolate_pos_embed ------------------------
// torch.nn.functional.interpolate(mode='bicubic', align_corners=False) along one axis: the
// taps and weights of output o for an input of n samples (A = -0.75, borders clamped).
namespace detail {
inline void torch_bicubic_taps(Index n, Index out, Index o, Index idx[4], double w[4]) {
  constexpr double A = -0.75;
  const double scale = static_cast<double>(n) / static_cast<double>(out);  // area_pixel_compute_scale
  const double src = (static_cast<double>(o) + 0.5) * scale - 0.5;         // not clamped for cubic
  const double f = std::floor(src), t = src - f;
  const auto near = [&](double x) { return ((A + 2) * x - (A + 3)) * x * x + 1; };       // |x| <= 1
  const auto far = [&](double x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; };  // 1 < |x| < 2
  w[0] = far(t + 1), w[1] = near(t), w[2] = near(1 - t), w[3] = far(2 - t);
  for (int k = 0; k < 4; ++k) idx[k] = std::clamp<Index>(static_cast<Index>(f) - 1 + k, 0, n - 1);
}
}  // namespace detail

// dst (extra + G1*G1, D) from src (extra + G0*G0, D): the first `extra` rows (the cls token)
// copied, the patch rows, a G0 x G0 grid of D-vectors, resized to G1 x G1 by bicubic
// interpolation as the official interpolate_pos_embed does for a fine-tuning resolution that
// differs from pretraining's. Accumulated in double, so a float table is rounded once (PyTorch
// in float32 rounds every product: its result is up to ~1e-6 from the exact one).
template <class S>
inline void interpolate_pos_embed(S* dst, Index G1, const S* src, Index G0, Index D, Index extra = 1) {
  std::copy(src, src + extra * D, dst);
  const S* in = src + extra * D;
  S* out = dst + extra * D;
  std::vector<double> acc(static_cast<std::size_t>(D));
  for (Index y = 0; y < G1; ++y) {
    Index iy[4], ix[4];
    double wy[4], wx[4];
    detail::torch_bicubic_taps(G0, G1, y, iy, wy);
    for (Index x = 0; x < G1; ++x) {
      detail::torch_bicubic_taps(G0, G1, x, ix, wx);
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int a = 0; a < 4; ++a)
        for (int b = 0; b < 4; ++b) {
          const double w = wy[a] * wx[b];
          const S* row = in + (iy[a] * G0 + ix[b]) * D;
          for (Index d = 0; d < D; ++d) acc[d] += w * static_cast<double>(row[d]);
        }
      for (Index d = 0; d < D; ++d) out[(y * G1 + x) * D + d] = static_cast<S>(acc[d]);
    }
  }
}

}  // namespace mae

#endif  // MAE_LAYERS_POS_EMBED_HPP
