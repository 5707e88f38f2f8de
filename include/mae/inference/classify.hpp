// mae/inference/classify.hpp — a fine-tuned classifier at work (`mae eval`, `mae predict`):
// loaded from its checkpoint, evaluated on labelled images (a ClassificationReport), asked
// for the k most probable classes of new ones; the reports as CSV.
//
// Images come as image(i, dst): write image i, normalized, as (C, H, W) floats (called in
// parallel), e.g. [&](Index i, float* d) { loader.evaluation(i, d, crop_pct); }.
#ifndef MAE_INFERENCE_CLASSIFY_HPP
#define MAE_INFERENCE_CLASSIFY_HPP

#include "../core/common.hpp"
#include "../io/checkpoint.hpp"
#include "../io/interchange.hpp"
#include "../io/safetensors.hpp"
#include "../layers/cross_entropy.hpp"
#include "../models/classifier.hpp"
#include "metrics.hpp"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

namespace mae {

template <class Cfg>
struct LoadedClassifier {
  std::unique_ptr<VisionTransformer<Cfg>> model;
  ClassifierInfo info;  // its classes (names too), pooling and configuration
  Metadata metadata;    // the checkpoint's (its normalization, ...)
};

// A classifier checkpoint of `mae finetune` (its classes and pooling read from its metadata), or
// a timm or Hugging Face classifier (interchange::open_weights), in evaluation shape (no drop
// path), read once. Refused by name if it is not one, or is for another model.
template <class Cfg>
LoadedClassifier<Cfg> load_classifier(const std::string& path) {
  const safetensors::File f = interchange::open_weights(path);
  LoadedClassifier<Cfg> c;
  c.metadata = f.metadata();
  c.info = read_classifier_info(c.metadata, path);
  typename VisionTransformer<Cfg>::Options o;
  o.num_classes = c.info.classes, o.global_pool = c.info.global_pool, o.drop_path = 0;
  c.model = std::make_unique<VisionTransformer<Cfg>>(o);
  c.model->load(f);
  return c;
}

// A classifier's report on `count` labelled images (evaluation mode): the scores are the logits
// (the prediction is their argmax, the first on ties, as predictions()), the loss is the
// cross-entropy without smoothing.
template <class Vit, class ImageFn>
ClassificationReport evaluate(Vit& model, Index count, const int* labels, ImageFn&& image, Index batch = 256) {
  const Index K = model.num_classes();
  ClassificationReport report(K);
  model.for_each_batch(count, batch, image, [&](Index s, Index B) {
    const auto z = model.logits();  // (B, K)
    for (Index i = 0; i < B; ++i) {
      const int y = labels[s + i];
      if (y < 0 || y >= K)
        throw Error("label " + std::to_string(y) + " of image " + std::to_string(s + i) + " is outside [0, " +
                    std::to_string(K) + ")");
      const auto* row = z.data() + i * K;
      report.add(row, y, log_sum_exp(row, K) - static_cast<double>(row[y]));
    }
  });
  return report;
}

struct RankedClass {
  Index index;         // the class
  double probability;  // softmax of the logits
};

// The k most probable classes of each of `count` images, most probable first (ties: the lower
// class first).
template <class Vit, class ImageFn>
std::vector<std::vector<RankedClass>> predict(Vit& model, Index count, ImageFn&& image, Index k, Index batch = 256) {
  const Index K = model.num_classes();
  k = std::min(k, K);
  if (k < 1) throw Error("predict: k must be at least 1");
  std::vector<std::vector<RankedClass>> out(static_cast<std::size_t>(count));
  std::vector<Index> order(static_cast<std::size_t>(K));
  model.for_each_batch(count, batch, image, [&](Index s, Index B) {
    const auto p = model.probabilities();  // (B, K)
    for (Index i = 0; i < B; ++i) {
      std::iota(order.begin(), order.end(), Index{0});
      std::stable_sort(order.begin(), order.end(), [&](Index x, Index y) { return p(i, x) > p(i, y); });
      auto& ranked = out[static_cast<std::size_t>(s + i)];
      for (Index j = 0; j < k; ++j) ranked.push_back({order[j], static_cast<double>(p(i, order[j]))});
    }
  });
  return out;
}

// --- reports as CSV -------------------------------------------------------------------------
// A CSV field: quoted (with "" for ") when it holds a comma, a quote or a line break.
inline std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

// class,images,accuracy: one line per class of the report (accuracy nan for a class without images).
inline std::string per_class_csv(const ClassificationReport& r, const std::vector<std::string>& class_names) {
  if (static_cast<Index>(class_names.size()) != r.classes())
    throw Error("per_class_csv: " + std::to_string(class_names.size()) + " names for " + std::to_string(r.classes()) +
                " classes");
  std::string csv = "class,images,accuracy\n";
  for (Index k = 0; k < r.classes(); ++k) {
    char line[64];
    std::snprintf(line, sizeof line, ",%lld,%.6f\n", static_cast<long long>(r.class_count(k)), r.class_accuracy(k));
    csv += csv_field(class_names[static_cast<std::size_t>(k)]) + line;
  }
  return csv;
}

// path,label1,prob1,...,labelk,probk: one line per image of predict()'s result.
inline std::string predictions_csv(const std::vector<std::string>& paths,
                                   const std::vector<std::vector<RankedClass>>& ranked,
                                   const std::vector<std::string>& class_names) {
  if (paths.size() != ranked.size()) throw Error("predictions_csv: as many paths as predictions needed");
  const std::size_t k = ranked.empty() ? 0 : ranked.front().size();
  std::string csv = "path";
  for (std::size_t j = 1; j <= k; ++j) csv += ",label" + std::to_string(j) + ",prob" + std::to_string(j);
  csv += "\n";
  for (std::size_t i = 0; i < paths.size(); ++i) {
    csv += csv_field(paths[i]);
    for (const RankedClass& c : ranked[i]) {
      char prob[32];
      std::snprintf(prob, sizeof prob, ",%.6f", c.probability);
      csv += "," + csv_field(class_names.at(static_cast<std::size_t>(c.index))) + prob;
    }
    csv += "\n";
  }
  return csv;
}

}  // namespace mae

#endif  // MAE_INFERENCE_CLASSIFY_HPP
