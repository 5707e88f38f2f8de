// mae knn: the weighted k-NN accuracy of an encoder's features (DINO's 20-NN vote).
#pragma once

#include "common.hpp"

#include <cstdio>

namespace mae_tool {

template <class Cfg>
int knn(const KnnArgs& a) {
  set_threads(a.run);
  auto encoder = feature_extractor<Cfg>(a.features, a.run.seed);
  Startup start(a.data, "");
  Split train(a.data, "train", Cfg::in_chans, Cfg::img_size, true, start),
      val(a.data, "val", Cfg::in_chans, Cfg::img_size, true, start);
  require_same_classes(train, val);
  const auto norm = normalization(a.data, encoder.metadata(), train.dataset(), a.features.checkpoint, start);
  start.save();
  mae::BatchLoader tl(train.dataset(), Cfg::img_size, 1, 0, {}, norm.mean, norm.stddev);
  mae::BatchLoader vl(val.dataset(), Cfg::img_size, 1, 0, {}, norm.mean, norm.stddev);
  const double cp = crop_pct(a.data, Cfg::img_size);
  const Index nt = train.dataset().size(), nv = val.dataset().size();
  Stopwatch t;
  const std::vector<float> ft = encoder.encode(nt, evaluation_images(tl, cp), a.batch);
  const std::vector<float> fv = encoder.encode(nv, evaluation_images(vl, cp), a.batch);
  const double enc_s = t.seconds();
  const auto r = mae::knn_classify(ft.data(), train.labels().data(), nt, fv.data(), val.labels().data(), nv,
                                   encoder.size(), static_cast<Index>(train.classes().size()), a.k, a.temperature);
  std::printf(
      "%lld-NN (T = %.3g) on %s [%s]: TOP-1 %.2f%%, top-5 %.2f%% (%lld train, %lld val images; encode %.0f s, vote "
      "%.1f s)\n",
      static_cast<long long>(a.k), a.temperature, train.dataset().name().c_str(), encoder.description().c_str(),
      100 * r.top1(), 100 * r.top5(), static_cast<long long>(nt), static_cast<long long>(nv), enc_s,
      t.seconds() - enc_s);
  return 0;
}

}  // namespace mae_tool
