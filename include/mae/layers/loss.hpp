// mae/layers/loss.hpp — MAE's reconstruction loss (forward_loss in models_mae.py).
//
//   target = patchify(imgs)                                          (N, L, P), P = p*p*C
//   norm_pix_loss: target = (target - mean) / sqrt(var + 1e-6), per patch, UNBIASED var
//   loss_nl = mean_j (pred - target)^2                               (N, L)
//   loss    = sum(loss_nl * mask) / sum(mask)     mean over the removed patches only
#ifndef MAE_LAYERS_LOSS_HPP
#define MAE_LAYERS_LOSS_HPP

#include "../core/common.hpp"

#include <algorithm>
#include <cmath>

namespace mae {

inline constexpr double kNormPixEps = 1e-6;

// Normalize each patch (row of P values) in place, as norm_pix_loss does.
template <class S>
inline void normalize_patches(S* target, Index rows, Index P) {
  if (P < 2) throw Error("norm_pix_loss needs at least 2 values per patch (unbiased variance)");
#pragma omp parallel for schedule(static)
  for (Index r = 0; r < rows; ++r) {
    S* t = target + r * P;
    double m = 0;
    for (Index j = 0; j < P; ++j) m += t[j];
    m /= static_cast<double>(P);
    double v = 0;
    for (Index j = 0; j < P; ++j) v += (t[j] - m) * (t[j] - m);
    v /= static_cast<double>(P - 1);
    const double s = 1.0 / std::sqrt(v + kNormPixEps);
    for (Index j = 0; j < P; ++j) t[j] = static_cast<S>((t[j] - m) * s);
  }
}

// Returns the loss; writes loss_nl (N*L). target (N*L, P) is already patchified/normalized.
template <class S>
inline S masked_mse_forward(S* loss_nl, const S* pred, const S* target, const S* mask, Index rows, Index P) {
#pragma omp parallel for schedule(static)
  for (Index r = 0; r < rows; ++r) {
    double acc = 0;
    for (Index j = 0; j < P; ++j) {
      const double e = static_cast<double>(pred[r * P + j]) - static_cast<double>(target[r * P + j]);
      acc += e * e;
    }
    loss_nl[r] = static_cast<S>(acc / static_cast<double>(P));
  }
  double num = 0, den = 0;  // sequential: the same sum for any thread count
  for (Index r = 0; r < rows; ++r) {
    num += static_cast<double>(loss_nl[r]) * static_cast<double>(mask[r]);
    den += static_cast<double>(mask[r]);
  }
  return static_cast<S>(num / den);
}

// dpred (N*L, P) += dloss * d loss / d pred   (= with Grad::assign)
template <class S>
inline void masked_mse_backward(S* dpred, const S* pred, const S* target, const S* mask, Index rows, Index P, S dloss,
                                Grad dpred_mode = Grad::accumulate) {
  // forward: loss = sum_r mask_r * (1/P) sum_j (pred - target)^2 / sum(mask)
  // => dpred = dloss * mask_r / sum(mask) * 2 (pred - target) / P
  double den = 0;
  for (Index r = 0; r < rows; ++r) den += static_cast<double>(mask[r]);
  const S scale = static_cast<S>(2.0 * static_cast<double>(dloss) / (den * static_cast<double>(P)));
#pragma omp parallel for schedule(static)
  for (Index r = 0; r < rows; ++r) {
    if (dpred_mode == Grad::assign) std::fill(dpred + r * P, dpred + (r + 1) * P, S(0));
    if (mask[r] == S(0)) continue;
    const S f = scale * mask[r];
    for (Index j = 0; j < P; ++j) dpred[r * P + j] += f * (pred[r * P + j] - target[r * P + j]);
  }
}

}  // namespace mae

#endif  // MAE_LAYERS_LOSS_HPP
