// mae/inference/features.hpp — an encoder's features (`mae extract`, `knn`, `probe`): the cls
// token, the patch-token mean or every token, after the final norm or of any block.
//
// Images come as image(i, dst), as for classify.hpp.
#ifndef MAE_INFERENCE_FEATURES_HPP
#define MAE_INFERENCE_FEATURES_HPP

#include "../core/common.hpp"
#include "../io/checkpoint.hpp"
#include "../io/interchange.hpp"
#include "../io/safetensors.hpp"
#include "../layers/tokens.hpp"
#include "../models/classifier.hpp"

#include <Eigen/Dense>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mae {

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

// The encoder of a checkpoint (an MAE's, converted official weights, a fine-tuned classifier's,
// or a Hugging Face or timm folder or file: interchange::open_weights; none: random init, from
// seed) and the features it gives. A classifier keeps
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
    std::optional<safetensors::File> f;  // read once
    if (!checkpoint.empty()) f.emplace(interchange::open_weights(checkpoint)), meta_ = f->metadata();
    typename Vit::Options vo;
    vo.seed = seed, vo.drop_path = 0;
    if (meta_.count(keys::classifier)) {  // a fine-tuned classifier: its own pooling
      const ClassifierInfo ci = read_classifier_info(meta_, checkpoint);
      vo.num_classes = ci.classes, vo.global_pool = ci.global_pool;
      if (opt_.pool != Pool::tokens) opt_.pool = ci.global_pool ? Pool::mean : Pool::cls;
      model_ = std::make_unique<Vit>(vo);
      model_->load(*f);
    } else {
      vo.num_classes = 1, vo.global_pool = opt_.pool == Pool::mean;
      model_ = std::make_unique<Vit>(vo);
      if (f) model_->load_encoder(*f);
    }
    const bool tokens = opt_.pool == Pool::tokens, mean = opt_.pool == Pool::mean;
    description_ = std::string(tokens ? "every token"
                               : mean ? "mean of patch tokens"
                                      : "cls token") +
                   (opt_.block > 0 ? " of block " + std::to_string(opt_.block)
                    : tokens       ? " of the last block"
                    : mean         ? " + fc_norm"
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
    pool_tokens_forward(pooled.data(), x.data(), B, T, D,
                        opt_.pool == Pool::mean ? mae::Pool::mean_patches : mae::Pool::cls);
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

#endif  // MAE_INFERENCE_FEATURES_HPP
