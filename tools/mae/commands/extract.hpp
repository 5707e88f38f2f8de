// mae extract: an encoder's features of every image of a split, with labels and file names,
// as safetensors.
#pragma once

#include "common.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>

namespace mae_tool {

template <class Cfg>
int extract(const ExtractArgs& a) {
  set_threads(a.run);
  auto encoder = feature_extractor<Cfg>(a.features, a.run.seed);
  Startup start(a.data, "");
  Split split(a.data, a.split, Cfg::in_chans, Cfg::img_size, false, start);
  const auto& ds = split.dataset();
  const auto norm = normalization(a.data, encoder.metadata(), ds, a.features.checkpoint, start);
  start.save();
  mae::BatchLoader loader(ds, Cfg::img_size, 1, 0, {}, norm.mean, norm.stddev);
  Stopwatch t;
  const std::vector<float> f =
      encoder.encode(ds.size(), evaluation_images(loader, crop_pct(a.data, Cfg::img_size)), a.batch);
  std::vector<float> labels(static_cast<std::size_t>(ds.size()));
  std::vector<std::string> files(labels.size());
  for (Index i = 0; i < ds.size(); ++i) labels[i] = static_cast<float>(ds.label(i)), files[i] = ds.item_name(i);
  mae::Metadata meta{{"format", "pt"},
                     {mae::keys::files, nlohmann::json(files).dump()},
                     {mae::keys::features, encoder.description()},
                     {mae::keys::config, Cfg::name()}};
  mae::write_classes(meta, split.classes());
  const bool tokens = encoder.options().pool == mae::FeatureOptions::Pool::tokens;
  const Index F = encoder.size(), T = 1 + Cfg::num_patches, D = Cfg::embed_dim;
  const std::vector<Index> shape = tokens ? std::vector<Index>{ds.size(), T, D} : std::vector<Index>{ds.size(), F};
  mae::safetensors::save(a.out,
                         {mae::safetensors::TensorOut::of<float>("features", shape, f.data()),
                          mae::safetensors::TensorOut::of<float>("labels", {ds.size()}, labels.data())},
                         meta);
  std::string dims;
  for (Index d : shape) dims += (dims.empty() ? "" : ", ") + std::to_string(d);
  std::fprintf(report_stream(a.out), "%s: features (%s) of %s [%s] in %.1f s (%.0f images/s), labels, file names\n",
               output_name(a.out), dims.c_str(), ds.name().c_str(), encoder.description().c_str(), t.seconds(),
               static_cast<double>(ds.size()) / std::max(t.seconds(), 1e-9));
  return 0;
}

}  // namespace mae_tool
