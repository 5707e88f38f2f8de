// mae eval: a classifier's top-1, top-5, per-class accuracy and confusion matrix on a split.
#pragma once

#include "common.hpp"

#include <cstdio>
#include <filesystem>

namespace mae_tool {

template <class Cfg>
int eval(const EvalArgs& a) {
  set_threads(a.run);
  const auto c = mae::load_classifier<Cfg>(a.checkpoint);
  const auto& meta = c.metadata;
  const auto& classes = c.info.class_names;
  auto& model = c.model;
  Startup start(a.data, "");
  Split split(a.data, a.split, Cfg::in_chans, Cfg::img_size, true, start);
  const auto& ds = split.dataset();
  if (split.classes() != classes)
    throw mae::Error(ds.name() + ": its classes differ from the ones " + a.checkpoint + " was trained on (" +
                     nlohmann::json(classes).dump() + ")");
  split.verify(a.data.verify);
  const auto norm = normalization(a.data, meta, ds, a.checkpoint, start);
  start.save();
  mae::BatchLoader loader(ds, Cfg::img_size, 1, 0, {}, norm.mean, norm.stddev);
  Stopwatch t;
  const mae::ClassificationReport r = mae::evaluate(
      *model, ds.size(), split.labels().data(), evaluation_images(loader, crop_pct(a.data, Cfg::img_size)), a.batch);
  const double secs = t.seconds();
  std::printf("%s on %s (%lld images): TOP-1 %.2f%%, top-5 %.2f%%, mean loss %.4f (%.1f s, %.0f images/s)\n",
              a.checkpoint.c_str(), ds.name().c_str(), static_cast<long long>(r.count()), 100 * r.top1(),
              100 * r.top5(), r.mean_loss(), secs, static_cast<double>(r.count()) / std::max(secs, 1e-9));
  for (Index k = 0; k < r.classes(); ++k)
    std::printf("  %-24s %6lld images  %6.2f%%\n", classes[k].c_str(), static_cast<long long>(r.class_count(k)),
                100 * r.class_accuracy(k));
  const std::string out = a.out.empty() ? std::filesystem::path(a.checkpoint).parent_path().string() : a.out;
  if (!out.empty()) std::filesystem::create_directories(out);
  const std::string dir = out.empty() ? "" : out + "/";
  mae::write_file(dir + "eval_" + a.split + ".csv", mae::per_class_csv(r, classes));
  const std::string png = dir + "confusion_" + a.split + ".png";
  if (mae::plot_confusion_matrix(png, r, classes, "confusion matrix, " + ds.name()))
    std::printf("per-class accuracy: %seval_%s.csv, confusion matrix: %s\n", dir.c_str(), a.split.c_str(), png.c_str());
  return 0;
}

}  // namespace mae_tool
