// mae predict: the top-k labels of new images, as a CSV of path, label and probability.
#pragma once

#include "common.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>

namespace mae_tool {

// The images of files and folders (searched recursively, sorted), in the order given.
inline std::vector<std::string> image_files(const std::vector<std::string>& inputs) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  for (const auto& in : inputs) {
    if (!fs::is_directory(in)) {
      files.push_back(in);
      continue;
    }
    std::vector<std::string> found;
    try {
      for (const auto& e : fs::recursive_directory_iterator(in, fs::directory_options::follow_directory_symlink))
        if (e.is_regular_file() && mae::is_image_file(e.path())) found.push_back(e.path().string());
    } catch (const fs::filesystem_error& e) {
      throw mae::Error(in + ": " + e.what());
    }
    if (found.empty()) throw mae::Error(in + ": holds no " + mae::kImageFormats + " images");
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

template <class Cfg>
int predict(const PredictArgs& a) {
  set_threads(a.run);
  const auto c = mae::load_classifier<Cfg>(a.checkpoint);
  const auto& meta = c.metadata;
  const auto& classes = c.info.class_names;
  auto& model = c.model;
  mae::ImageFolderOptions o;
  o.channels = Cfg::in_chans, o.max_pixels = a.data.max_pixels;
  o.max_side = max_side(a.data, Cfg::img_size);
  const mae::ImageFolder images(image_files(a.inputs), o);
  const auto norm = normalization(a.data, meta, images, a.checkpoint);
  if (norm.source != a.checkpoint && a.data.normalize == "auto")
    std::fprintf(stderr, "note: %s holds no normalization statistics; using the images' own\n", a.checkpoint.c_str());
  mae::BatchLoader loader(images, Cfg::img_size, 1, 0, {}, norm.mean, norm.stddev);
  Stopwatch t;
  const auto ranked =
      mae::predict(*model, images.size(), evaluation_images(loader, crop_pct(a.data, Cfg::img_size)), a.topk, a.batch);
  std::vector<std::string> paths;
  for (Index i = 0; i < images.size(); ++i) paths.push_back(images.item_name(i));
  mae::write_file(a.out, mae::predictions_csv(paths, ranked, classes));
  std::fprintf(report_stream(a.out), "%s: top-%lld labels of %lld images (%.1f s)\n", output_name(a.out),
               static_cast<long long>(std::min<Index>(a.topk, model->num_classes())),
               static_cast<long long>(images.size()), t.seconds());
  return 0;
}

}  // namespace mae_tool
