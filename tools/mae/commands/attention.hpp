// mae attention: where the encoder looks. For each image, the last block's attention of the cls
// token to the patches, per head (the DINO figure), and the attention rollout through every
// block (Abnar & Zuidema), overlaid on the picture as a PNG grid; the raw maps as safetensors.
#pragma once

#include "common.hpp"

#include <cstdio>
#include <string>
#include <vector>

namespace mae_tool {

template <class Cfg>
int attention(const AttentionArgs& a) {
  set_threads(a.run);
  constexpr Index C = Cfg::in_chans, S = Cfg::img_size, G = Cfg::grid, L = Cfg::num_patches, H = Cfg::num_heads;
  FeatureArgs fa;
  fa.checkpoint = a.checkpoint;
  auto encoder = feature_extractor<Cfg>(fa, a.run.seed);
  Startup start(a.data, "");
  Split split(a.data, a.split, C, S, false, start);
  const auto& ds = split.dataset();
  const auto norm = normalization(a.data, encoder.metadata(), ds, a.checkpoint, start);
  start.save();
  mae::BatchLoader loader(ds, S, 1, 0, {}, norm.mean, norm.stddev);
  const Index n = std::min<Index>(a.images, ds.size());
  std::vector<float> imgs(static_cast<std::size_t>(n * C * S * S));
  const double cp = crop_pct(a.data, S);
  for (Index i = 0; i < n; ++i) loader.evaluation(i, imgs.data() + i * C * S * S, cp);
  auto& model = encoder.model();
  std::vector<float> heads(static_cast<std::size_t>(n * H * L)), rollout(static_cast<std::size_t>(n * L));
  std::vector<std::string> files;
  model.for_each_batch(
      n, n, [&](Index i, float* dst) { std::copy_n(imgs.data() + i * C * S * S, C * S * S, dst); },
      [&](Index, Index B) {
        for (Index i = 0; i < B; ++i) {
          const std::vector<double> h = mae::cls_attention(model, Cfg::depth, i), r = mae::attention_rollout(model, i);
          std::copy(h.begin(), h.end(), heads.begin() + i * H * L);
          std::copy(r.begin(), r.end(), rollout.begin() + i * L);
        }
      });
  for (Index i = 0; i < n; ++i) files.push_back(ds.item_name(i));
  mae::save_attention_grid(a.out, loader, imgs, n, S, heads, rollout, H, G);
  if (!a.maps.empty())
    mae::safetensors::save(a.maps,
                           {mae::safetensors::TensorOut::of<float>("cls_attention", {n, H, G, G}, heads.data()),
                            mae::safetensors::TensorOut::of<float>("rollout", {n, G, G}, rollout.data())},
                           {{"format", "pt"},
                            {mae::keys::files, nlohmann::json(files).dump()},
                            {mae::keys::config, Cfg::name()},
                            {mae::keys::features, "block " + std::to_string(Cfg::depth) + " cls attention, rollout; " +
                                                      encoder.description()}});
  std::fprintf(report_stream(a.out),
               "%s: %lld images of %s (picture | rollout | the last block's cls attention, heads 1-%d)%s%s\n",
               output_name(a.out), static_cast<long long>(n), ds.name().c_str(), static_cast<int>(H),
               a.maps.empty() ? "" : "; the maps in ", a.maps.c_str());
  return 0;
}

}  // namespace mae_tool
