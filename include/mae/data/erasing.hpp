// mae/data/erasing.hpp — random erasing of the reference's fine-tuning (timm's RandomErasing,
// mode "pixel", count 1), per image after normalization: with probability reprob (0.25), one
// box of area U(0.02, 1/3) x image area and aspect exp(U(log 0.3, log 1/0.3)), up to 10
// tries, filled with N(0, 1) per pixel and channel.
#ifndef MAE_DATA_ERASING_HPP
#define MAE_DATA_ERASING_HPP

#include "../core/common.hpp"
#include "../core/rng.hpp"

#include <algorithm>
#include <cmath>

namespace mae {

struct RandomErasingOptions {
  double prob = 0.25;  // --reprob (0: off)
  double min_area = 0.02, max_area = 1.0 / 3.0;
  double min_aspect = 0.3;  // max_aspect = 1 / min_aspect
};

// timm's RandomErasing(mode="pixel", count 1) on a normalized image (C, H, W), in place.
inline void random_erasing(float* img, Index C, Index H, Index W, Rng& r, const RandomErasingOptions& o) {
  if (!(r.uniform() < o.prob)) return;
  const double area = static_cast<double>(H * W);
  const double log_lo = std::log(o.min_aspect), log_hi = std::log(1.0 / o.min_aspect);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = r.uniform(o.min_area, o.max_area) * area;
    const double aspect = std::exp(r.uniform(log_lo, log_hi));
    const Index h = static_cast<Index>(std::nearbyint(std::sqrt(target * aspect)));
    const Index w = static_cast<Index>(std::nearbyint(std::sqrt(target / aspect)));
    if (w < W && h < H) {
      const Index top = std::min(static_cast<Index>(r.uniform() * static_cast<double>(H - h + 1)), H - h);
      const Index left = std::min(static_cast<Index>(r.uniform() * static_cast<double>(W - w + 1)), W - w);
      for (Index c = 0; c < C; ++c)
        for (Index y = top; y < top + h; ++y)
          for (Index x = left; x < left + w; ++x) img[(c * H + y) * W + x] = static_cast<float>(r.normal());
      return;
    }
  }
}

}  // namespace mae

#endif  // MAE_DATA_ERASING_HPP
