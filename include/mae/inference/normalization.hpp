// mae/inference/normalization.hpp — the statistics a model's images are normalized with
// (--normalize of every `mae` command): a checkpoint's own, ImageNet's, or the images'.
#ifndef MAE_INFERENCE_NORMALIZATION_HPP
#define MAE_INFERENCE_NORMALIZATION_HPP

#include "../core/common.hpp"
#include "../data/loader.hpp"
#include "../io/checkpoint.hpp"

#include <string>
#include <vector>

namespace mae {

enum class NormalizeFrom {
  automatic,  // the checkpoint's own statistics; ImageNet's for weights from elsewhere; else the images'
  dataset,    // the images' own (dataset_mean_std)
  imagenet,   // the reference's (0.485, 0.456, 0.406), (0.229, 0.224, 0.225); gray: their means
};

struct NormalizationChoice : Normalization {
  std::string source;  // the checkpoint's path, "ImageNet", or the dataset's name
};

// The reference's ImageNet statistics for `channels` channels (gray: the means of the three).
inline Normalization imagenet_normalization(Index channels) {
  if (channels == 1) return {{0.449}, {0.226}};
  return {{0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}};
}

// The statistics images are normalized with. automatic: those saved in the checkpoint (the ones
// its model was trained with; for a timm or Hugging Face folder, its config's, as
// interchange::open_weights reads them); ImageNet's for another checkpoint without mae.config
// (converted official weights, trained on ImageNet); else the images' own. meta: the checkpoint's metadata (empty, and
// checkpoint "", for none). The images' own are computed as dataset_mean_std does (over the
// processes p, and from or into the index `cache`, when given).
inline NormalizationChoice choose_normalization(NormalizeFrom from, const Metadata& meta, const std::string& checkpoint,
                                                const ImageDataset& images, const DataParallel& p = {},
                                                ImageIndexCache* cache = nullptr) {
  NormalizationChoice n;
  const Index C = images.channels();
  const bool foreign = !checkpoint.empty() && !meta.count(keys::config);
  if (from == NormalizeFrom::automatic)
    if (const auto saved = read_normalization(meta, checkpoint, C)) {
      n.Normalization::operator=(*saved);
      n.source = checkpoint;
      return n;
    }
  if (from == NormalizeFrom::imagenet || (from == NormalizeFrom::automatic && foreign)) {
    n.Normalization::operator=(imagenet_normalization(C));
    n.source = "ImageNet";
    return n;
  }
  dataset_mean_std(images, n.mean, n.stddev, kStatisticsImages, p, cache);
  n.source = images.name();
  return n;
}

}  // namespace mae

#endif  // MAE_INFERENCE_NORMALIZATION_HPP
