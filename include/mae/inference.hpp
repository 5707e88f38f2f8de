// mae/inference.hpp — what a trained model is used for, as the `mae` commands use it:
//
//   choose_normalization   the statistics a model's images are normalized with     (every command)
//   load_classifier        a fine-tuned classifier from its checkpoint              (eval, predict)
//   evaluate               top-1 / top-5, per class, confusion, mean loss          (eval)
//   predict                the k most probable classes of unlabelled images        (predict)
//   FeatureExtractor       an encoder's features: pooled or per token, any block   (extract, knn, probe)
//
// Images come as image(i, dst): write image i, normalized, as (C, H, W) floats (called in
// parallel), e.g. [&](Index i, float* d) { loader.evaluation(i, d, crop_pct); }.
#ifndef MAE_INFERENCE_HPP
#define MAE_INFERENCE_HPP

#include "checkpoint.hpp"
#include "classifier.hpp"
#include "common.hpp"
#include "cross_entropy.hpp"
#include "data/loader.hpp"
#include "metrics.hpp"
#include "safetensors.hpp"
#include "tokens.hpp"

#include <Eigen/Dense>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

namespace mae {

// --- normalization -------------------------------------------------------------------------
enum class NormalizeFrom {
  automatic,  // the checkpoint's own statistics; ImageNet's for weights from elsewhere; else the images'
  dataset,    // the images' own (dataset_mean_std)
  imagenet,   // the reference's (0.485, 0.456, 0.406), (0.229, 0.224, 0.225); gray: their means
};

struct NormalizationChoice : Normalization {
  std::string source;  // the checkpoint's path, "ImageNet", or the dataset's name
};

// The statistics images are normalized with. automatic: those saved in the checkpoint (the ones
// its model was trained with); ImageNet's for a checkpoint without mae.config (converted official
// weights, trained on ImageNet); else the images' own. meta: the checkpoint's metadata (empty, and
// checkpoint "", for none).
inline NormalizationChoice choose_normalization(NormalizeFrom from, const Metadata& meta, const std::string& checkpoint,
                                                const ImageDataset& images) {
  NormalizationChoice n;
  const Index C = images.channels();
  const bool foreign = !checkpoint.empty() && !meta.count(keys::config);
  if (from == NormalizeFrom::imagenet || (from == NormalizeFrom::automatic && foreign)) {
    n.mean = {0.485, 0.456, 0.406}, n.stddev = {0.229, 0.224, 0.225}, n.source = "ImageNet";
    if (C == 1) n.mean = {0.449}, n.stddev = {0.226};  // the channel means
    return n;
  }
  if (from == NormalizeFrom::automatic)
    if (const auto saved = read_normalization(meta, checkpoint, C)) {
      n.Normalization::operator=(*saved);
      n.source = checkpoint;
      return n;
    }
  dataset_mean_std(images, n.mean, n.stddev);
  n.source = images.name();
  return n;
}

// --- classifiers ---------------------------------------------------------------------------
// A classifier checkpoint of `mae finetune` (its classes and pooling read from its metadata), in
// evaluation shape (no drop path). Refused by name if it is not one, or is for another model.
template <class Cfg>
std::unique_ptr<VisionTransformer<Cfg>> load_classifier(const std::string& path) {
  const ClassifierInfo ci = read_classifier_info(safetensors::File(path).metadata(), path);
  typename VisionTransformer<Cfg>::Options o;
  o.num_classes = ci.classes, o.global_pool = ci.global_pool, o.drop_path = 0;
  auto m = std::make_unique<VisionTransformer<Cfg>>(o);
  m->load(path);
  return m;
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

// --- features ------------------------------------------------------------------------------
struct FeatureOptions {
  enum class Pool {
    cls,     // the cls token
    mean,    // the mean of the patch tokens
    tokens,  // every token, cls first: (1 + L) x D per image
  };
  Pool pool = Pool::cls;
  // 1..depth: the output of that block, as the blocks leave it (no norm). 0: after the last
  // block and the model's own norm, i.e. the classifier head's input (norm(x)[:, 0] for cls,
  // fc_norm(mean) for mean); tokens then come from the last block, before the norm.
  Index block = 0;
};

// The encoder of a checkpoint (an MAE's, converted official weights, or a fine-tuned
// classifier's; none: random init, from seed) and the features it gives. A classifier keeps
// the pooling it was trained with; Pool::tokens takes every token of it.
template <class Cfg>
class FeatureExtractor {
 public:
  using Vit = VisionTransformer<Cfg>;
  using Pool = FeatureOptions::Pool;
  static constexpr Index T = Vit::T, L = Vit::L, D = Vit::D;

  FeatureExtractor(const std::string& checkpoint, FeatureOptions o, std::uint64_t seed = 0) : opt_(o) {
    if (o.block < 0 || o.block > Vit::kDepth)
      throw Error("features: block must be in 1.." + std::to_string(Vit::kDepth) + " (0: after the final norm)");
    if (!checkpoint.empty()) meta_ = safetensors::File(checkpoint).metadata();
    typename Vit::Options vo;
    vo.seed = seed, vo.drop_path = 0;
    if (meta_.count(keys::classifier)) {  // a fine-tuned classifier: its own pooling
      const ClassifierInfo ci = read_classifier_info(meta_, checkpoint);
      vo.num_classes = ci.classes, vo.global_pool = ci.global_pool;
      if (opt_.pool != Pool::tokens) opt_.pool = ci.global_pool ? Pool::mean : Pool::cls;
      model_ = std::make_unique<Vit>(vo);
      model_->load(checkpoint);
    } else {
      vo.num_classes = 1, vo.global_pool = opt_.pool == Pool::mean;
      model_ = std::make_unique<Vit>(vo);
      if (!checkpoint.empty()) model_->load_encoder(checkpoint);
    }
    const bool tokens = opt_.pool == Pool::tokens, mean = opt_.pool == Pool::mean;
    description_ = std::string(tokens ? "every token" : mean ? "mean of patch tokens" : "cls token") +
                   (opt_.block > 0     ? " of block " + std::to_string(opt_.block)
                    : tokens          ? " of the last block"
                    : mean            ? " + fc_norm"
                                      : " + norm") +
                   ", encoder " + (checkpoint.empty() ? "random init" : checkpoint);
  }

  Vit& model() { return *model_; }
  const Metadata& metadata() const { return meta_; }  // the checkpoint's
  const FeatureOptions& options() const { return opt_; }
  std::string description() const { return description_; }  // e.g. "cls token + norm, encoder PATH"
  // Features per image: D, or (1 + L) * D for tokens.
  Index size() const { return opt_.pool == Pool::tokens ? T * D : D; }

  // The features (B, size()) of the model's last forward.
  Eigen::MatrixXf of_last_forward() const {
    const Index B = model_->batch_size();
    if (opt_.block == 0 && opt_.pool != Pool::tokens) return model_->features().template cast<float>();
    const auto x = model_->block_output(opt_.block == 0 ? Vit::kDepth : opt_.block);  // (B*T, D), cls first
    Eigen::MatrixXf f(B, size());
    if (opt_.pool == Pool::tokens) {
      for (Index n = 0; n < B; ++n)
        for (Index t = 0; t < T; ++t) f.block(n, t * D, 1, D) = x.row(n * T + t).template cast<float>();
      return f;
    }
    Eigen::Matrix<typename Vit::Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> pooled(B, D);
    pool_tokens_forward(pooled.data(), x.data(), B, T, D, opt_.pool == Pool::mean ? mae::Pool::mean_patches : mae::Pool::cls);
    return pooled.template cast<float>();
  }

  // The features of `count` images, rows of a (count, size()) matrix, in batches of `batch`.
  template <class ImageFn>
  std::vector<float> encode(Index count, ImageFn&& image, Index batch = 256) {
    std::vector<float> out(static_cast<std::size_t>(count * size()));
    model_->for_each_batch(count, batch, image, [&](Index s, Index B) {
      const Eigen::MatrixXf f = of_last_forward();
      for (Index i = 0; i < B; ++i) Eigen::Map<Eigen::RowVectorXf>(out.data() + (s + i) * size(), size()) = f.row(i);
    });
    return out;
  }

 private:
  FeatureOptions opt_;
  Metadata meta_;
  std::unique_ptr<Vit> model_;
  std::string description_;
};

}  // namespace mae

#endif  // MAE_INFERENCE_HPP
