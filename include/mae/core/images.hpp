// mae/core/images.hpp — a batch of images as the models take it: (N, C, H, W) floats,
// contiguous, and the check every model's forward makes of it.
#ifndef MAE_CORE_IMAGES_HPP
#define MAE_CORE_IMAGES_HPP

#include "common.hpp"

#include <algorithm>
#include <cmath>
#include <string>

namespace mae {

// A batch of images (N, C, H, W), contiguous, row-major (as a PyTorch tensor).
template <class S>
struct ImageBatch {
  const S* data = nullptr;
  Index n = 0, channels = 0, height = 0, width = 0;
};

template <class S>
inline ImageBatch<S> images(const S* data, Index n, Index channels, Index height, Index width) {
  return ImageBatch<S>{data, n, channels, height, width};
}

// Refuses an empty batch or images other than Cfg's C x size x size; `what` names the caller.
template <class Cfg, class S>
inline void check_images(const ImageBatch<S>& imgs, const char* what) {
  constexpr Index C = Cfg::in_chans, size = Cfg::img_size;
  if (imgs.data == nullptr || imgs.n <= 0)
    throw Error(std::string(what) + ": empty image batch (N = " + std::to_string(imgs.n) + ")");
  if (imgs.channels != C || imgs.height != size || imgs.width != size)
    throw Error(std::string(what) + ": images are " + std::to_string(imgs.channels) + "x" +
                std::to_string(imgs.height) + "x" + std::to_string(imgs.width) + " (CxHxW) but this model (" +
                Cfg::name() + ") takes " + std::to_string(C) + "x" + std::to_string(size) + "x" + std::to_string(size));
  // NaN or Inf pixels would poison every gradient silently: one pass over the batch (a small
  // fraction of a step) refuses them
  const Index n = imgs.n * C * size * size;
  bool finite = true;
  for (Index i = 0; i < n; ++i) finite &= std::isfinite(imgs.data[i]);
  if (!finite) {
    const Index i = std::find_if(imgs.data, imgs.data + n, [](S v) { return !std::isfinite(v); }) - imgs.data;
    throw Error(std::string(what) + ": image " + std::to_string(i / (C * size * size)) +
                " of the batch holds a non-finite pixel (" + std::to_string(static_cast<double>(imgs.data[i])) +
                ") at (C, H, W) offset " + std::to_string(i % (C * size * size)));
  }
}

}  // namespace mae

#endif  // MAE_CORE_IMAGES_HPP
