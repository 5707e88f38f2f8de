// The `mae` program's data: a split of Fashion-MNIST or of an image folder, at the model's
// channel count, checked before anything trains; the normalization; small helpers.
#pragma once

#include "args.hpp"

#include <mae/data.hpp>
#include <mae/inference/normalization.hpp>
#include <mae/io/safetensors.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mae_tool {

struct Stopwatch {
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); }
};

// --max-side: 0 is 4 x the model's image size; below the image size, every image would be
// shrunk and then scaled up again (--max-side 1 would train on 1-pixel images): refused.
inline Index max_side(const DataArgs& a, Index img_size) {
  if (a.max_side == 0) return 4 * img_size;
  if (a.max_side < img_size)
    throw mae::Error("--max-side " + std::to_string(a.max_side) + " is below the model's image size " +
                     std::to_string(img_size) + ": images would be shrunk under it and scaled up again");
  return a.max_side;
}

// Does the directory hold .tar files directly?
inline bool holds_shards(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return false;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (mae::is_shard_file(e.path())) return true;
  return false;
}

// The shards of a split, or "" when the split is a folder (or Fashion-MNIST): --data as shards
// (a pattern or a .tar: the training split; its validation split is --val-data), DIR/train/*.tar
// and DIR/val/*.tar, or a directory of .tar files (the training split).
inline std::string shard_source(const DataArgs& a, const std::string& split) {
  namespace fs = std::filesystem;
  if (split == "val" && !a.val_data.empty())
    return mae::is_shard_spec(a.val_data) || holds_shards(a.val_data) ? a.val_data : "";
  if (a.fashion_mnist()) return "";
  if (mae::is_shard_spec(a.data)) {
    if (split == "train") return a.data;
    throw mae::Error("--data '" + a.data + "' names the training shards; give the validation shards with --val-data");
  }
  const fs::path root(a.data);
  if (holds_shards(root / split)) return (root / split).string();
  if (split == "train" && !fs::is_directory(root / "train") && holds_shards(root)) return a.data;
  return "";
}

inline mae::ImageFolderOptions folder_options(const DataArgs& a, Index channels, Index img_size) {
  mae::ImageFolderOptions o;
  o.channels = channels, o.max_pixels = a.max_pixels;
  o.max_side = max_side(a, img_size);
  return o;
}

// The folder of a split under --data: DIR/train or DIR/val, or for unlabelled pretraining a
// folder without train/, whole.
inline std::string folder_path(const DataArgs& a, const std::string& split, bool labelled) {
  namespace fs = std::filesystem;
  const fs::path root(a.data), dir = root / split;
  if (!fs::is_directory(root)) throw mae::Error("--data '" + a.data + "': not a directory (nor fashion-mnist)");
  if (fs::is_directory(dir)) return dir.string();
  if (labelled || split != "train")
    throw mae::Error("'" + dir.string() + "' is missing: a labelled folder holds " + (root / "train").string() +
                     "/<class>/*.png and " + (root / "val").string() + "/<class>/*.png");
  return root.string();  // pretraining on a flat folder
}

// What the splits of one command share at start-up: the processes (under mpirun the first one
// scans a folder and sends it to the others) and the image index, which the first process reads
// and, after save(), writes: --index FILE, or `default_index` when --index is not given (a
// training command's OUT/image_index.txt; "" for none); --index none: no index.
class Startup {
 public:
  Startup(const DataArgs& a, const std::string& default_index, const mae::DataParallel& p = {}) : p_(p) {
    const std::string path = a.index.empty() ? default_index : a.index == "none" ? "" : a.index;
    if (!path.empty() && p.rank == 0) cache_ = std::make_unique<mae::ImageIndexCache>(path);
  }
  const mae::DataParallel& processes() const { return p_; }
  mae::ImageIndexCache* cache() const { return cache_.get(); }
  std::string index_path() const { return cache_ ? cache_->path() : ""; }
  // Writes the index when the start-up learned something new (the first process), and frees it
  // (an entry per file, held only for the start-up).
  void save() {
    if (cache_) cache_->save();
    cache_.reset();
  }

 private:
  mae::DataParallel p_;
  std::unique_ptr<mae::ImageIndexCache> cache_;
};

// One split ("train" or "val") as the model sees it.
class Split {
 public:
  // labelled: classification (class directories, or a .cls per sample, required). For an
  // unlabelled train split, a folder without train/ is used whole.
  Split(const DataArgs& a, const std::string& split, Index channels, Index img_size, bool labelled,
        const Startup& start = Startup({}, "")) {
    Index limit = split == "train" ? a.limit : a.val_limit;
    const std::string shards = shard_source(a, split);
    const bool own_val = split == "val" && !a.val_data.empty();  // --val-data, a folder
    if (!shards.empty()) {
      mae::ShardOptions o;
      o.images = folder_options(a, channels, img_size);
      o.labelled = labelled;
      Stopwatch t;
      shards_ = mae::open_shards(shards, o, start.processes());
      std::printf("%s: %lld images in %zu shards, indexed in %.1f s\n", shards.c_str(),
                  static_cast<long long>(shards_->size()), shards_->shards().size(), t.seconds());
      std::fflush(stdout);
      if (labelled && shards_->class_names().size() < 2)
        throw mae::Error("shards '" + shards + "' have " + std::to_string(shards_->class_names().size()) +
                         " class; classification needs at least two");
      ds_ = shards_.get();
    } else if (a.fashion_mnist() && !own_val) {
      fm_ = std::make_unique<mae::FashionMnist>(a.fashion_mnist_dir, split == "train" ? "train" : "t10k");
      ds_ = fm_.get();
      if (channels != 1) ds_ = (repeat_ = std::make_unique<mae::RepeatChannels>(*ds_, channels)).get();
    } else {
      Stopwatch t;
      folder_ = mae::open_image_folder(own_val ? a.val_data : folder_path(a, split, labelled),
                                       folder_options(a, channels, img_size), start.cache(), start.processes());
      const Index read = folder_->headers_read();
      std::printf("%s: %lld images in %zu classes, indexed in %.1f s (%lld headers read%s)\n", folder_->name().c_str(),
                  static_cast<long long>(folder_->size()), folder_->class_names().size(), t.seconds(),
                  static_cast<long long>(read),
                  start.cache() ? (", the others' from " + start.index_path()).c_str() : "");
      std::fflush(stdout);
      if (labelled) folder_->require_classes();
      ds_ = folder_.get();
    }
    if (limit > 0) ds_ = (subset_ = std::make_unique<mae::EvenSubset>(*ds_, limit)).get();
  }

  const mae::ImageDataset& dataset() const { return *ds_; }
  const mae::ImageFolder* folder() const { return folder_.get(); }
  mae::ShardDataset* shards() const { return shards_.get(); }
  std::vector<std::string> classes() const { return ds_->class_names(); }
  std::vector<int> labels() const {
    std::vector<int> y(static_cast<std::size_t>(ds_->size()));
    for (Index i = 0; i < ds_->size(); ++i) y[i] = ds_->label(i);
    return y;
  }
  // Decodes every image of a folder or shards once (an unreadable one stops here, named) and prints
  // the count and the images per second of the pass.
  void verify(bool enabled) const {
    if ((!folder_ && !shards_) || !enabled) return;
    Stopwatch t;
    const mae::ImageDataset& d = folder_ ? static_cast<const mae::ImageDataset&>(*folder_) : *shards_;
    mae::verify_images(d);
    std::printf("%s: %lld images, %lld classes, all decoded in %.1f s (%.0f images/s)\n", d.name().c_str(),
                static_cast<long long>(d.size()), static_cast<long long>(d.class_names().size()), t.seconds(),
                static_cast<double>(d.size()) / std::max(t.seconds(), 1e-9));
    std::fflush(stdout);
  }

 private:
  std::unique_ptr<mae::FashionMnist> fm_;
  std::unique_ptr<mae::ShardDataset> shards_;
  std::unique_ptr<mae::RepeatChannels> repeat_;
  std::unique_ptr<mae::ImageFolder> folder_;
  std::unique_ptr<mae::EvenSubset> subset_;
  const mae::ImageDataset* ds_ = nullptr;
};

// A classifier needs the same classes in train and val. Validation shards without a class
// file take the training set's names (their labels must be among them).
inline void require_same_classes(const Split& train, const Split& val) {
  if (train.folder() && val.folder()) mae::require_same_classes(*train.folder(), *val.folder());
  if (val.shards() && !val.shards()->has_class_file()) val.shards()->use_classes(train.classes());
  const auto a = train.classes(), b = val.classes();
  if (a != b)
    throw mae::Error("'" + train.dataset().name() + "' and '" + val.dataset().name() + "' name different classes (" +
                     std::to_string(a.size()) + " and " + std::to_string(b.size()) + ")");
}

// The encoder a linear probe's features were read from (its mae.features: "<features>, encoder
// PATH"); "" when `checkpoint` is not a probe's, or its encoder was random.
inline std::string probe_encoder(const std::string& checkpoint) {
  std::error_code ec;
  if (checkpoint.empty() || std::filesystem::is_directory(checkpoint, ec)) return "";
  const mae::safetensors::File f(checkpoint);
  const auto it = f.metadata().find(mae::keys::features);
  if (!f.contains("head.0.running_mean") || it == f.metadata().end()) return "";
  const std::string& d = it->second;
  const std::size_t at = d.rfind(", encoder ");
  if (at == std::string::npos || d.compare(at + 10, std::string::npos, "random init") == 0) return "";
  return d.substr(at + 10);
}

inline std::map<std::string, std::string> metadata_of(const std::string& path) {
  return path.empty() ? std::map<std::string, std::string>{} : mae::interchange::open_weights(path).metadata();
}

// --normalize (auto, dataset, imagenet) as the library chooses it (mae::choose_normalization).
inline mae::NormalizationChoice normalization(const DataArgs& a, const std::map<std::string, std::string>& meta,
                                              const mae::ImageDataset& images, const std::string& checkpoint,
                                              const Startup& start = Startup({}, "")) {
  const mae::NormalizeFrom from = a.normalize == "imagenet"  ? mae::NormalizeFrom::imagenet
                                  : a.normalize == "dataset" ? mae::NormalizeFrom::dataset
                                                             : mae::NormalizeFrom::automatic;
  return mae::choose_normalization(from, meta, checkpoint, images, start.processes(), start.cache());
}

inline void print(const mae::NormalizationChoice& n) {
  std::printf("normalization (%s): mean", n.source.c_str());
  for (double m : n.mean) std::printf(" %.4f", m);
  std::printf(", std");
  for (double v : n.stddev) std::printf(" %.4f", v);
  std::printf("\n");
}

// The reference's crop_pct: 224/256 up to 224 pixels, 1 above (main_finetune.py).
inline double crop_pct(const DataArgs& a, Index img_size) {
  return a.crop_pct > 0 ? a.crop_pct : (img_size <= 224 ? 0.875 : 1.0);
}

}  // namespace mae_tool
