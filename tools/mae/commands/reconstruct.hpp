// mae reconstruct: the MAE figure (original | masked | reconstruction | + visible).
#pragma once

#include "common.hpp"

#include <cstdio>
#include <optional>

namespace mae_tool {

template <class Cfg>
int reconstruct(const ReconstructArgs& a) {
  using Model = mae::MaskedAutoencoder<Cfg>;
  constexpr Index S = Cfg::img_size, C = Cfg::in_chans;
  set_threads(a.run);
  const auto meta = metadata_of(a.checkpoint);
  const bool norm_pix = mae::metadata_value(meta, mae::keys::norm_pix_loss) == std::optional<std::string>("1");
  Model model(typename Model::Options{norm_pix, a.run.seed});
  model.load(a.checkpoint, /*strict=*/false);  // a training checkpoint's optimizer state is ignored
  Startup start(a.data, "");
  Split split(a.data, a.split, C, S, false, start);
  const auto& ds = split.dataset();
  const auto norm = normalization(a.data, meta, ds, a.checkpoint, start);
  start.save();
  mae::BatchLoader loader(ds, S, 1, 0, {}, norm.mean, norm.stddev);
  const Index n = std::min<Index>(a.images, ds.size());
  std::vector<float> f(static_cast<std::size_t>(n * C * S * S));
  for (Index i = 0; i < n; ++i) loader.plain(i, f.data() + i * C * S * S);
  std::vector<typename Model::Scalar> imgs(f.begin(), f.end());
  mae::save_reconstruction_grid(a.out, model, loader, imgs, n, a.mask_ratio, a.run.seed);
  std::fprintf(report_stream(a.out),
               "%s: %lld images of %s, mask ratio %.2f (original | masked | reconstruction | + visible)\n",
               output_name(a.out), static_cast<long long>(n), ds.name().c_str(), a.mask_ratio);
  return 0;
}

}  // namespace mae_tool
