// mae/data/loader.hpp — the dataset interface, augmentation and batches for training.
//
// A dataset hands out images as float (C, H, W) in [0, 1] (Fashion-MNIST in
// fashion_mnist.hpp, image folders in image_folder.hpp). The loader reproduces the
// reference augmentation: RandomResizedCrop(scale 0.2-1.0, ratio 3/4-4/3, bicubic) +
// horizontal flip, then normalization by the dataset's mean and std; for fine-tuning also
// RandAugment (rand_augment.hpp) and random erasing (erasing.hpp). All randomness is
// derived from (seed, epoch, position), so a batch is the same whatever the thread count, and
// resuming in the middle of a run needs no data-loader state. Needs no library.
#ifndef MAE_DATA_LOADER_HPP
#define MAE_DATA_LOADER_HPP

#include "../core/common.hpp"
#include "../core/processes.hpp"
#include "../core/rng.hpp"
#include "erasing.hpp"
#include "image_index.hpp"
#include "rand_augment.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

namespace mae {

// Images of one size, (C, H, W) floats in [0, 1], with optional labels.
class ImageDataset {
 public:
  virtual ~ImageDataset() = default;
  virtual Index size() const = 0;
  virtual Index channels() const = 0;
  virtual Index height(Index i) const = 0;
  virtual Index width(Index i) const = 0;
  virtual void load(Index i, float* out) const = 0;  // (C, height(i), width(i))
  virtual int label(Index) const { return -1; }
  virtual std::string name() const = 0;
  // The name of each label (label k is class_names()[k]); empty when unlabelled.
  virtual std::vector<std::string> class_names() const { return {}; }
  // Where image i came from (a file path, or "<dataset>/<index>").
  virtual std::string item_name(Index i) const { return name() + "/" + std::to_string(i); }
  // For a dataset read from shards (datasets/shards.hpp): where each shard's images end
  // (shard s holds images shard_ends()[s - 1] to shard_ends()[s] - 1); the loader then
  // orders an epoch by shards. Empty (the default): any order is as cheap as another.
  virtual std::vector<Index> shard_ends() const { return {}; }
  // A summary of the files image i is read from as they are now (an image folder: their sizes
  // and times), so that what was computed from the images can be kept between runs and found
  // again (ImageIndexCache); "" (the default): not known, nothing is kept.
  virtual std::string content_stamp() const { return ""; }
};

// A grayscale dataset seen as RGB (the channel repeated), for RGB models on Fashion-MNIST.
class RepeatChannels : public ImageDataset {
 public:
  RepeatChannels(const ImageDataset& ds, Index channels) : ds_(ds), C_(channels) {
    if (ds.channels() != 1) throw Error(ds.name() + ": only a 1-channel dataset can be repeated into channels");
  }
  Index size() const override { return ds_.size(); }
  Index channels() const override { return C_; }
  Index height(Index i) const override { return ds_.height(i); }
  Index width(Index i) const override { return ds_.width(i); }
  void load(Index i, float* out) const override {
    const Index HW = height(i) * width(i);
    ds_.load(i, out);
    for (Index c = 1; c < C_; ++c) std::copy(out, out + HW, out + c * HW);
  }
  int label(Index i) const override { return ds_.label(i); }
  std::string name() const override { return ds_.name(); }
  std::vector<std::string> class_names() const override { return ds_.class_names(); }
  std::string item_name(Index i) const override { return ds_.item_name(i); }
  std::string content_stamp() const override { return ds_.content_stamp(); }

 private:
  const ImageDataset& ds_;
  Index C_;
};

// n images of a dataset, evenly spaced (image k is ds's k * size / n): a quick run on a
// folder sorted by class still sees every class.
class EvenSubset : public ImageDataset {
 public:
  EvenSubset(const ImageDataset& ds, Index n) : ds_(ds), n_(std::min(n, ds.size())) {
    if (n <= 0) throw Error(ds.name() + ": a subset needs at least one image");
  }
  Index size() const override { return n_; }
  Index channels() const override { return ds_.channels(); }
  Index height(Index i) const override { return ds_.height(at(i)); }
  Index width(Index i) const override { return ds_.width(at(i)); }
  void load(Index i, float* out) const override { ds_.load(at(i), out); }
  int label(Index i) const override { return ds_.label(at(i)); }
  std::string name() const override { return ds_.name(); }
  std::vector<std::string> class_names() const override { return ds_.class_names(); }
  std::string item_name(Index i) const override { return ds_.item_name(at(i)); }
  std::string content_stamp() const override { return ds_.content_stamp(); }

 private:
  Index at(Index i) const { return i * ds_.size() / n_; }
  const ImageDataset& ds_;
  Index n_;
};

// What a resumed run checks: the images are those the run started with. The count, the
// channels, the class names, and a hash (FNV-1a, 64 bits) of every image's name (relative to
// the dataset's, so another spelling of the same folder matches), label and size in order: an
// image added, removed, renamed or resized changes it; Fashion-MNIST's is its size and split.
// `source` (the dataset's name) is for messages only.
inline nlohmann::json dataset_fingerprint(const ImageDataset& ds) {
  Fnv1a h;
  const std::string prefix = ds.name() + "/";
  for (Index i = 0; i < ds.size(); ++i) {
    std::string item = ds.item_name(i);
    if (item.compare(0, prefix.size(), prefix) == 0) item.erase(0, prefix.size());
    h.field(item);
    h.field(std::to_string(ds.label(i)) + ":" + std::to_string(ds.height(i)) + "x" + std::to_string(ds.width(i)));
  }
  return {{"source", ds.name()},
          {"images", ds.size()},
          {"channels", ds.channels()},
          {"classes", ds.class_names()},
          {"items", h.hex()}};
}

// Decodes every image of a dataset once (in parallel, nothing kept): an unreadable one stops
// here, named, instead of in the middle of training; the first in index order is reported.
inline void verify_images(const ImageDataset& ds) {
  parallel_for_first_error(ds.size(), 16, [&ds](Index i) {
    std::vector<float> buf(static_cast<std::size_t>(ds.channels() * ds.height(i) * ds.width(i)));
    ds.load(i, buf.data());
  });
}

// The key under which an index keeps a dataset's statistics: a hash of its content stamp, its
// channels, and the name and loaded size of each of the n images they are taken from; "" when
// the dataset has no stamp.
inline std::string statistics_key(const ImageDataset& ds, Index n) {
  const std::string stamp = ds.content_stamp();
  if (stamp.empty()) return "";
  Fnv1a h;
  h.field(stamp), h.field(std::to_string(ds.channels()) + " " + std::to_string(n));
  for (Index k = 0; k < n; ++k) {
    const Index i = k * ds.size() / n;
    h.field(ds.item_name(i) + " " + std::to_string(ds.height(i)) + "x" + std::to_string(ds.width(i)));
  }
  return "meanstd-" + h.hex();
}

// How many images (evenly spaced) dataset_mean_std takes by default.
inline constexpr Index kStatisticsImages = 10000;

// Per-channel mean and std of a dataset (over at most max_images, evenly spaced). The images
// are decoded in parallel; each one's sums are its own, added in image order afterwards, so
// the result is the same for any thread count (it is stored in checkpoints and compared on
// resume). Under several processes (p.shares()) each decodes its part of the images and the
// parts are summed exactly: the same result as one process. With an index, statistics kept
// for the same images (statistics_key) are taken from it, and new ones kept in it.
inline void dataset_mean_std(const ImageDataset& ds, std::vector<double>& mean, std::vector<double>& stddev,
                             Index max_images = kStatisticsImages, const DataParallel& p = {},
                             ImageIndexCache* cache = nullptr) {
  const Index C = ds.channels(), n = std::min(ds.size(), max_images);
  if (n == 0) throw Error(ds.name() + ": empty dataset");
  const bool shared = p.shares();
  const std::string key = cache ? statistics_key(ds, n) : "";  // (a cache on the first process only)
  std::vector<double> saved;
  if (!key.empty())
    if (const auto v = cache->statistics(key); v && v->size() == static_cast<std::size_t>(2 * C)) saved = *v;
  if (shared) {  // the first process says whether it has them, and which
    std::string msg(reinterpret_cast<const char*>(saved.data()), saved.size() * sizeof(double));
    p.broadcast(msg);
    saved.resize(msg.size() / sizeof(double));
    std::memcpy(saved.data(), msg.data(), saved.size() * sizeof(double));
  }
  if (saved.size() == static_cast<std::size_t>(2 * C)) {
    mean.assign(saved.begin(), saved.begin() + C), stddev.assign(saved.begin() + C, saved.end());
    return;
  }
  const Index from = shared ? p.rank * n / p.ranks : 0, to = shared ? (p.rank + 1) * n / p.ranks : n;
  std::vector<double> sums(static_cast<std::size_t>(n * (2 * C + 1)), 0.0);  // per image: s[C], s2[C], pixels
  parallel_for_first_error(to - from, 4, [&](Index j) {
    const Index k = from + j;
    const Index i = k * ds.size() / n, HW = ds.height(i) * ds.width(i);
    std::vector<float> buf(static_cast<std::size_t>(C * HW));
    ds.load(i, buf.data());
    double* t = sums.data() + k * (2 * C + 1);
    for (Index c = 0; c < C; ++c)
      for (Index j = 0; j < HW; ++j) t[c] += buf[c * HW + j], t[C + c] += double(buf[c * HW + j]) * buf[c * HW + j];
    t[2 * C] = static_cast<double>(HW);
  });
  if (shared) p.sum(sums.data(), static_cast<Index>(sums.size()));
  std::vector<double> s(C, 0.0), s2(C, 0.0);
  double count = 0;
  for (Index k = 0; k < n; ++k) {
    const double* t = sums.data() + k * (2 * C + 1);
    for (Index c = 0; c < C; ++c) s[c] += t[c], s2[c] += t[C + c];
    count += t[2 * C];
  }
  mean.resize(C), stddev.resize(C);
  for (Index c = 0; c < C; ++c) {
    mean[c] = s[c] / count;
    stddev[c] = std::sqrt(std::max(s2[c] / count - mean[c] * mean[c], 1e-12));
  }
  if (!key.empty()) {
    std::vector<double> v(mean);
    v.insert(v.end(), stddev.begin(), stddev.end());
    cache->keep_statistics(key, v);
  }
}

// --- resampling ----------------------------------------------------------------------------
// Bicubic (a = -0.5, as PIL) separable resampling of the box (y0, x0, bh, bw) of src (C, H, W)
// into dst (C, oh, ow); when shrinking, the kernel is widened (antialiasing, as PIL).
inline double bicubic_kernel(double x) {
  const double a = -0.5;
  x = std::abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

namespace detail {
struct Taps {
  std::vector<Index> first, count;
  std::vector<double> weights;  // count.size() rows of `stride` weights
  Index stride = 0;
};
inline Taps resample_taps(Index in_size, double box0, double box_len, Index out_size) {
  Taps t;
  const double scale = box_len / static_cast<double>(out_size);
  const double fscale = std::max(scale, 1.0), support = 2.0 * fscale;
  t.stride = static_cast<Index>(std::ceil(support)) * 2 + 1;
  t.first.resize(out_size), t.count.resize(out_size),
      t.weights.assign(static_cast<std::size_t>(out_size * t.stride), 0.0);
  for (Index o = 0; o < out_size; ++o) {
    const double center = box0 + (static_cast<double>(o) + 0.5) * scale;
    const Index lo = std::max<Index>(0, static_cast<Index>(std::floor(center - support + 0.5)));
    const Index hi = std::min<Index>(in_size, static_cast<Index>(std::floor(center + support + 0.5)));
    double total = 0;
    Index n = 0;
    for (Index k = lo; k < hi && n < t.stride; ++k, ++n) {
      const double w = bicubic_kernel((static_cast<double>(k) - center + 0.5) / fscale);
      t.weights[static_cast<std::size_t>(o * t.stride + n)] = w;
      total += w;
    }
    if (total != 0)
      for (Index k = 0; k < n; ++k) t.weights[static_cast<std::size_t>(o * t.stride + k)] /= total;
    t.first[o] = lo, t.count[o] = n;
  }
  return t;
}
}  // namespace detail

// src is read as src[c * cs + y * ys + x * xs] * scale: (C, H, W) floats, or the interleaved
// 8-bit (H, W, C) pixels of a decoder with scale 1/255 (no full-size float copy).
template <class Src>
inline void resize_bicubic_strided(float* dst, Index oh, Index ow, const Src* src, Index C, Index H, Index W, Index cs,
                                   Index ys, Index xs, double scale, double y0, double x0, double bh, double bw) {
  const detail::Taps ty = detail::resample_taps(H, y0, bh, oh), tx = detail::resample_taps(W, x0, bw, ow);
  std::vector<double> tmp(static_cast<std::size_t>(H * ow));
  for (Index c = 0; c < C; ++c) {
    const Src* s = src + c * cs;
    for (Index y = 0; y < H; ++y)  // horizontal pass: (H, W) -> (H, ow)
      for (Index o = 0; o < ow; ++o) {
        double acc = 0;
        for (Index k = 0; k < tx.count[o]; ++k)
          acc += tx.weights[o * tx.stride + k] * static_cast<double>(s[y * ys + (tx.first[o] + k) * xs]);
        tmp[static_cast<std::size_t>(y * ow + o)] = acc * scale;
      }
    for (Index o = 0; o < oh; ++o)  // vertical pass: (H, ow) -> (oh, ow)
      for (Index x = 0; x < ow; ++x) {
        double acc = 0;
        for (Index k = 0; k < ty.count[o]; ++k) acc += ty.weights[o * ty.stride + k] * tmp[(ty.first[o] + k) * ow + x];
        dst[(c * oh + o) * ow + x] = static_cast<float>(std::clamp(acc, 0.0, 1.0));  // PIL clips to the pixel range
      }
  }
}

inline void resize_bicubic(float* dst, Index oh, Index ow, const float* src, Index C, Index H, Index W, double y0,
                           double x0, double bh, double bw) {
  resize_bicubic_strided(dst, oh, ow, src, C, H, W, H * W, W, 1, 1.0, y0, x0, bh, bw);
}

// The reference's evaluation transform (main_finetune.py's build_transform): Resize(int(S /
// crop_pct)) of the shorter side (bicubic), then CenterCrop(S). Returns the box (top, left,
// height, width) of the source image that the S x S output covers; resampling that box to
// S x S is the same arithmetic as resizing the whole image and cropping.
inline std::array<double, 4> center_crop_box(Index H, Index W, Index S, double crop_pct) {
  if (!(crop_pct > 0 && crop_pct <= 1)) throw Error("crop_pct must be in (0, 1]");
  const Index size = static_cast<Index>(static_cast<double>(S) / crop_pct);
  // torchvision Resize(int): the shorter side becomes `size`, the longer int(size * long / short)
  Index rh = size, rw = size;
  if (H < W) rw = static_cast<Index>(static_cast<double>(size) * static_cast<double>(W) / static_cast<double>(H));
  if (W < H) rh = static_cast<Index>(static_cast<double>(size) * static_cast<double>(H) / static_cast<double>(W));
  if (rh < S || rw < S) rh = std::max(rh, S), rw = std::max(rw, S);
  // CenterCrop: top = int(round((rh - S) / 2))
  const double top = std::round(static_cast<double>(rh - S) / 2.0),
               left = std::round(static_cast<double>(rw - S) / 2.0);
  const double sy = static_cast<double>(H) / static_cast<double>(rh),
               sx = static_cast<double>(W) / static_cast<double>(rw);
  return {top * sy, left * sx, static_cast<double>(S) * sy, static_cast<double>(S) * sx};
}

// --- augmentation --------------------------------------------------------------------------
struct AugmentOptions {
  bool random_resized_crop = true;
  double scale_min = 0.2, scale_max = 1.0;
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;
  bool horizontal_flip = true;
  // Fine-tuning's (main_finetune.py: RandAugment after the flip, on the 8-bit image; random
  // erasing after normalization). Off by default: pretraining uses neither.
  bool rand_augment = false;
  RandAugmentOptions rand_augment_options;
  RandomErasingOptions erasing{0.0};
};

// torchvision's RandomResizedCrop.get_params: (top, left, height, width) of the crop.
inline std::array<Index, 4> random_resized_crop_box(Index H, Index W, Rng& rng, const AugmentOptions& o) {
  const double area = static_cast<double>(H * W);
  const double log_r0 = std::log(o.ratio_min), log_r1 = std::log(o.ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * rng.uniform(o.scale_min, o.scale_max);
    const double ratio = std::exp(rng.uniform(log_r0, log_r1));
    const Index w = static_cast<Index>(std::lround(std::sqrt(target * ratio)));
    const Index h = static_cast<Index>(std::lround(std::sqrt(target / ratio)));
    if (w > 0 && h > 0 && w <= W && h <= H) {
      const Index top = static_cast<Index>(rng.uniform() * static_cast<double>(H - h + 1));
      const Index left = static_cast<Index>(rng.uniform() * static_cast<double>(W - w + 1));
      return {top, left, h, w};
    }
  }
  // fallback: central crop with the ratio clamped into range
  const double in_ratio = static_cast<double>(W) / static_cast<double>(H);
  Index w = W, h = H;
  if (in_ratio < o.ratio_min)
    h = static_cast<Index>(std::lround(static_cast<double>(W) / o.ratio_min));
  else if (in_ratio > o.ratio_max)
    w = static_cast<Index>(std::lround(static_cast<double>(H) * o.ratio_max));
  return {(H - h) / 2, (W - w) / 2, h, w};
}

// Batches of augmented, normalized images (N, C, S, S) for epoch e, drop_last as the
// reference's pretraining loader. Position k of epoch e is sample perm_e[k].
//
// From shards (a dataset with shard_ends()), WebDataset's order instead: each epoch shuffles
// the shards, process r of R takes shards r, r + R, ... of that order, and its samples pass
// through a shuffle buffer (shuffle_buffer samples; 1: none) on their way into batches. An
// epoch is still size / (R batch) batches on every process: a process whose shards hold
// fewer samples goes through them again (the same order), one whose shards hold more leaves
// the rest for this epoch. The order is a function of (seed, epoch, rank, R), so a run is
// reproducible for a given number of processes, and a resume needs no loader state.
class BatchLoader {
 public:
  BatchLoader(const ImageDataset& ds, Index image_size, Index batch, std::uint64_t seed, AugmentOptions aug = {},
              std::vector<double> mean = {}, std::vector<double> stddev = {})
      : ds_(ds),
        S_(image_size),
        batch_(batch),
        seed_(seed),
        aug_(aug),
        mean_(std::move(mean)),
        stddev_(std::move(stddev)),
        ends_(ds.shard_ends()) {
    if (batch <= 0) throw Error("batch size must be positive");
    if (ds.size() < batch)
      throw Error(ds.name() + ": " + std::to_string(ds.size()) + " images, fewer than one batch of " +
                  std::to_string(batch));
    if (mean_.empty()) dataset_mean_std(ds, mean_, stddev_);
    if (static_cast<Index>(mean_.size()) != ds.channels() || static_cast<Index>(stddev_.size()) != ds.channels())
      throw Error("normalization needs one mean and one std per channel");
    for (double m : mean_)  // timm's RandAugment fill: img_mean = min(255, round(255 mean))
      fill_.push_back(static_cast<std::uint8_t>(std::min(255.0, std::nearbyint(255.0 * std::max(0.0, m)))));
  }

  const ImageDataset& dataset() const { return ds_; }
  Index batches_per_epoch() const { return ds_.size() / (batch_ * ranks_); }
  Index batch_size() const { return batch_; }
  Index channels() const { return ds_.channels(); }
  const std::vector<double>& mean() const { return mean_; }
  const std::vector<double>& stddev() const { return stddev_; }

  // Data parallel, as DistributedSampler (drop_last): this process (rank of ranks) takes
  // positions rank, rank + ranks, ... of every epoch's order, so that batch b of every rank
  // together is batch b of one process at ranks times the batch size.
  void set_shard(int rank, int ranks) {
    if (ranks <= 0 || rank < 0 || rank >= ranks)
      throw Error("data parallel: rank " + std::to_string(rank) + " of " + std::to_string(ranks));
    if (ds_.size() < batch_ * ranks)
      throw Error(ds_.name() + ": " + std::to_string(ds_.size()) + " images, fewer than one batch of " +
                  std::to_string(batch_) + " on each of " + std::to_string(ranks) + " processes");
    if (!ends_.empty() && static_cast<Index>(ends_.size()) < ranks)
      throw Error(ds_.name() + ": " + std::to_string(ends_.size()) + " shards for " + std::to_string(ranks) +
                  " processes; each process reads whole shards, so give at least one shard per process");
    rank_ = rank, ranks_ = ranks, cached_epoch_ = -1;
  }
  // From shards: the shuffle buffer's size in samples (1: the shards' own order).
  void set_shuffle_buffer(Index samples) {
    if (samples < 1) throw Error("the shuffle buffer holds at least one sample");
    shuffle_buffer_ = samples, cached_epoch_ = -1;
  }
  Index shuffle_buffer() const { return shuffle_buffer_; }
  // The position in the epoch's order of image k of batch b (over all processes; it seeds
  // the image's augmentation).
  Index position(Index b, Index k) const { return (b * batch_ + k) * ranks_ + rank_; }

  // The order of epoch e (Fisher-Yates with a generator seeded by (seed, e)); from shards,
  // this process's order (see the class comment).
  std::vector<Index> permutation(Index epoch) const {
    if (!ends_.empty()) return shard_order(epoch);
    std::vector<Index> p(static_cast<std::size_t>(ds_.size()));
    for (Index i = 0; i < ds_.size(); ++i) p[i] = i;
    Rng r(mix_seed(seed_, 0x5eed, static_cast<std::uint64_t>(epoch)));
    for (Index i = ds_.size() - 1; i > 0; --i)
      std::swap(p[i], p[static_cast<Index>(r.next_u64() % std::uint64_t(i + 1))]);
    return p;
  }

  // Batch b of epoch e into out (N, C, S, S); labels (N) if given.
  void batch(Index epoch, Index b, float* out, int* labels = nullptr) {
    if (epoch != cached_epoch_) perm_ = permutation(epoch), cached_epoch_ = epoch;
    const Index C = ds_.channels(), S = S_;
    std::exception_ptr error;
#pragma omp parallel for schedule(static)
    for (Index k = 0; k < batch_; ++k) {
      try {
        const Index pos = position(b, k), idx = perm_[ends_.empty() ? pos : b * batch_ + k];
        Rng r(mix_seed(seed_, static_cast<std::uint64_t>(epoch), static_cast<std::uint64_t>(pos)));
        augment(idx, r, out + k * C * S * S);
        if (labels) labels[k] = ds_.label(idx);
      } catch (...) {
#pragma omp critical
        error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
  }

  // One image, augmented with r, normalized: (C, S, S).
  void augment(Index idx, Rng& r, float* dst) const { augment(idx, r, dst, aug_); }
  const AugmentOptions& augment_options() const { return aug_; }

  // Without augmentation (figures): the whole image resized to S x S, normalized.
  void plain(Index idx, float* dst) const {
    AugmentOptions none;
    none.random_resized_crop = false, none.horizontal_flip = false;
    Rng unused(0);
    augment(idx, unused, dst, none);
  }

  // The evaluation transform (center_crop_box, crop_pct 0.875 as the reference for S <= 224;
  // 1: the whole image), normalized.
  void evaluation(Index idx, float* dst, double crop_pct = 0.875) const {
    const Index C = ds_.channels(), H = ds_.height(idx), W = ds_.width(idx), S = S_;
    std::vector<float> src(static_cast<std::size_t>(C * H * W));
    ds_.load(idx, src.data());
    const auto box = center_crop_box(H, W, S, crop_pct);
    resize_bicubic(dst, S, S, src.data(), C, H, W, box[0], box[1], box[2], box[3]);
    normalize(dst);
  }

  void normalize(float* img) const {
    const Index C = ds_.channels(), SS = S_ * S_;
    for (Index c = 0; c < C; ++c)
      for (Index j = 0; j < SS; ++j) img[c * SS + j] = static_cast<float>((img[c * SS + j] - mean_[c]) / stddev_[c]);
  }
  void denormalize(float* img) const {
    const Index C = ds_.channels(), SS = S_ * S_;
    for (Index c = 0; c < C; ++c)
      for (Index j = 0; j < SS; ++j) img[c * SS + j] = static_cast<float>(img[c * SS + j] * stddev_[c] + mean_[c]);
  }

 private:
  void augment(Index idx, Rng& r, float* dst, const AugmentOptions& aug) const {
    const Index C = ds_.channels(), H = ds_.height(idx), W = ds_.width(idx), S = S_;
    std::vector<float> src(static_cast<std::size_t>(C * H * W));
    ds_.load(idx, src.data());
    std::array<Index, 4> box{0, 0, H, W};
    if (aug.random_resized_crop) box = random_resized_crop_box(H, W, r, aug);
    if (!aug.random_resized_crop && H == S && W == S) {
      std::copy(src.begin(), src.end(), dst);
    } else {
      resize_bicubic(dst, S, S, src.data(), C, H, W, static_cast<double>(box[0]), static_cast<double>(box[1]),
                     static_cast<double>(box[2]), static_cast<double>(box[3]));
    }
    if (aug.horizontal_flip && r.uniform() < 0.5)
      for (Index c = 0; c < C; ++c)
        for (Index y = 0; y < S; ++y) std::reverse(dst + (c * S + y) * S, dst + (c * S + y + 1) * S);
    if (aug.rand_augment) {
      ImageU8 img(C, S, S);
      img.from_float(dst);
      rand_augment(img, r, aug.rand_augment_options, fill_.data());
      img.to_float(dst);
    }
    normalize(dst);
    if (aug.erasing.prob > 0) random_erasing(dst, C, S, S, r, aug.erasing);
  }

  std::vector<Index> shard_order(Index epoch) const {
    const Index shards = static_cast<Index>(ends_.size());
    std::vector<Index> order(static_cast<std::size_t>(shards));
    for (Index s = 0; s < shards; ++s) order[s] = s;
    Rng r(mix_seed(seed_, 0x5ba4d, static_cast<std::uint64_t>(epoch)));
    for (Index i = shards - 1; i > 0; --i)
      std::swap(order[i], order[static_cast<Index>(r.next_u64() % std::uint64_t(i + 1))]);
    std::vector<Index> stream;  // this process's shards, in the epoch's order
    for (Index j = rank_; j < shards; j += ranks_)
      for (Index i = order[j] == 0 ? 0 : ends_[order[j] - 1]; i < ends_[order[j]]; ++i) stream.push_back(i);
    const std::size_t need = static_cast<std::size_t>(batches_per_epoch() * batch_),
                      cap = static_cast<std::size_t>(shuffle_buffer_);
    Rng rb(mix_seed(seed_, 0xb0ffe4 + static_cast<std::uint64_t>(rank_), static_cast<std::uint64_t>(epoch)));
    std::vector<Index> out, buf;
    out.reserve(need + stream.size());
    while (out.size() < need) {  // a pass through the stream, then the buffer emptied
      for (const Index x : stream) {
        if (buf.size() < cap) {
          buf.push_back(x);
          continue;
        }
        Index& slot = buf[static_cast<std::size_t>(rb.next_u64() % cap)];
        out.push_back(slot), slot = x;
      }
      for (std::size_t i = buf.size(); i > 1; --i) std::swap(buf[i - 1], buf[rb.next_u64() % i]);
      out.insert(out.end(), buf.begin(), buf.end()), buf.clear();
    }
    out.resize(need);
    return out;
  }

  const ImageDataset& ds_;
  Index S_, batch_;
  std::uint64_t seed_;
  AugmentOptions aug_;
  std::vector<double> mean_, stddev_;
  std::vector<Index> ends_;  // the dataset's shard_ends(); empty: not shards
  Index shuffle_buffer_ = 1000;
  std::vector<std::uint8_t> fill_;  // (C) RandAugment's fill colour, from mean_
  std::vector<Index> perm_;
  int rank_ = 0, ranks_ = 1;
  Index cached_epoch_ = -1;
};

}  // namespace mae

#endif  // MAE_DATA_LOADER_HPP
