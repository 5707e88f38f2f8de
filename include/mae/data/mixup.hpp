// mae/data/mixup.hpp — the batch-level augmentations of the reference's fine-tuning (timm's
// Mixup in mode "batch" with its label smoothing):
//
//   mixup:   x_i = lam x_i + (1 - lam) x_{N-1-i}                 lam ~ Beta(0.8, 0.8)
//   cutmix:  x_i[box] = x_{N-1-i}[box]                           lam ~ Beta(1, 1), then
//            lam = 1 - box area / image area (correct_lam)
//   targets  t_i = lam y_i + (1 - lam) y_{N-1-i},  y = one_hot * (1 - s) + s / K
//   per batch: with probability prob (1) mix; cutmix with probability switch_prob (0.5)
//
// Randomness from this library's Rng (timm's numpy / Python draws cannot be matched one for
// one): the arithmetic is checked against timm by tests/fixtures/augment_timm.safetensors,
// the draws by their distributions.
#ifndef MAE_DATA_MIXUP_HPP
#define MAE_DATA_MIXUP_HPP

#include "../core/common.hpp"
#include "../core/rng.hpp"
#include "../layers/cross_entropy.hpp"

#include <algorithm>
#include <cmath>
#include <string>

namespace mae {

// Gamma(a, 1) (Marsaglia and Tsang; a < 1 through Gamma(a + 1) U^(1/a)), from r.
inline double gamma_sample(Rng& r, double a) {
  if (a < 1) {
    double u = r.uniform();
    while (u <= 0) u = r.uniform();
    return gamma_sample(r, a + 1) * std::pow(u, 1.0 / a);
  }
  const double d = a - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x, v;
    do {
      x = r.normal();
      v = 1.0 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const double u = r.uniform();
    if (u < 1 - 0.0331 * x * x * x * x) return d * v;
    if (u > 0 && std::log(u) < 0.5 * x * x + d * (1 - v + std::log(v))) return d * v;
  }
}
inline double beta_sample(Rng& r, double a, double b) {
  const double x = gamma_sample(r, a), y = gamma_sample(r, b);
  return x + y > 0 ? x / (x + y) : 0.5;
}

struct MixupOptions {
  double mixup_alpha = 0.8;   // --mixup (0: off)
  double cutmix_alpha = 1.0;  // --cutmix (0: off)
  double prob = 1.0;          // --mixup-prob: of mixing a batch at all
  double switch_prob = 0.5;   // --mixup-switch-prob: of cutmix instead of mixup when both are on
  double label_smoothing = 0.1;
  bool active() const { return mixup_alpha > 0 || cutmix_alpha > 0; }
  void check() const {
    if (!(mixup_alpha >= 0 && cutmix_alpha >= 0 && std::isfinite(mixup_alpha) && std::isfinite(cutmix_alpha)))
      throw Error("mixup and cutmix alphas must be finite and >= 0");
    if (!(prob >= 0 && prob <= 1 && switch_prob >= 0 && switch_prob <= 1))
      throw Error("mixup prob and switch prob must be in [0, 1]");
    if (!(label_smoothing >= 0 && label_smoothing < 1)) throw Error("label smoothing must be in [0, 1)");
  }
};

// What one batch got: lam, and for cutmix the box rows [y0, y1) and columns [x0, x1).
struct MixParams {
  double lam = 1;
  bool cutmix = false;
  Index y0 = 0, y1 = 0, x0 = 0, x1 = 0;
};

// timm's rand_bbox for a box centre (cy, cx), and the lam its clipped area gives (correct_lam).
inline MixParams cutmix_box(Index H, Index W, double lam, Index cy, Index cx) {
  const double ratio = std::sqrt(1 - lam);
  const Index ch = static_cast<Index>(static_cast<double>(H) * ratio),
              cw = static_cast<Index>(static_cast<double>(W) * ratio);
  MixParams p;
  p.cutmix = true;
  p.y0 = std::clamp<Index>(cy - ch / 2, 0, H), p.y1 = std::clamp<Index>(cy + ch / 2, 0, H);
  p.x0 = std::clamp<Index>(cx - cw / 2, 0, W), p.x1 = std::clamp<Index>(cx + cw / 2, 0, W);
  p.lam = 1.0 - static_cast<double>((p.y1 - p.y0) * (p.x1 - p.x0)) / static_cast<double>(H * W);
  return p;
}

// timm's Mixup._params_per_batch and the box of _mix_batch.
inline MixParams draw_mix(Rng& r, const MixupOptions& o, Index H, Index W) {
  MixParams p;
  if (!o.active() || !(r.uniform() < o.prob)) return p;
  bool cut = o.cutmix_alpha > 0;
  if (o.mixup_alpha > 0 && o.cutmix_alpha > 0) cut = r.uniform() < o.switch_prob;
  const double alpha = cut ? o.cutmix_alpha : o.mixup_alpha;
  const double lam = beta_sample(r, alpha, alpha);
  if (lam == 1.0) return p;
  if (!cut) {
    p.lam = lam;
    return p;
  }
  const Index cy = static_cast<Index>(r.uniform() * static_cast<double>(H));
  const Index cx = static_cast<Index>(r.uniform() * static_cast<double>(W));
  return cutmix_box(H, W, lam, std::min(cy, H - 1), std::min(cx, W - 1));
}

// Mixes the batch x (N, C, H, W) in place with its reverse, as timm's _mix_batch.
inline void apply_mix(const MixParams& p, float* x, Index N, Index C, Index H, Index W) {
  if (N % 2) throw Error("mixup / cutmix needs an even batch size, not " + std::to_string(N));
  if (p.lam == 1.0 && !p.cutmix) return;
  const Index img = C * H * W;
  const float lam = static_cast<float>(p.lam), rest = static_cast<float>(1.0 - p.lam);
  for (Index i = 0; i < N / 2; ++i) {
    float *a = x + i * img, *b = x + (N - 1 - i) * img;
    if (p.cutmix) {
      for (Index c = 0; c < C; ++c)
        for (Index y = p.y0; y < p.y1; ++y)
          std::swap_ranges(a + (c * H + y) * W + p.x0, a + (c * H + y) * W + p.x1, b + (c * H + y) * W + p.x0);
    } else {
      for (Index j = 0; j < img; ++j) {
        const float ta = unfused_mul(a[j], lam) + unfused_mul(b[j], rest);  // torch: x * lam + flip(x) * (1 - lam)
        const float tb = unfused_mul(b[j], lam) + unfused_mul(a[j], rest);
        a[j] = ta, b[j] = tb;
      }
    }
  }
}

// timm's mixup_target: targets (N, K).
inline void mix_targets(float* targets, const int* labels, Index N, Index K, double lam, double smoothing) {
  const float off = static_cast<float>(smoothing / static_cast<double>(K)),
              on = static_cast<float>(1.0 - smoothing + smoothing / static_cast<double>(K));
  const float l = static_cast<float>(lam), rest = static_cast<float>(1.0 - lam);
  check_labels(labels, N, K);
  for (Index n = 0; n < N; ++n) {
    for (Index k = 0; k < K; ++k) {
      const float y1 = k == labels[n] ? on : off, y2 = k == labels[N - 1 - n] ? on : off;
      targets[n * K + k] = unfused_mul(y1, l) + unfused_mul(y2, rest);
    }
  }
}

}  // namespace mae

#endif  // MAE_DATA_MIXUP_HPP
