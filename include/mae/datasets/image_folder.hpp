// mae/datasets/image_folder.hpp — a dataset of PNG/JPEG/WebP/TIFF/BMP/GIF/PGM/PPM files (image_decode.hpp),
// converted to the model's channel count, in torchvision's ImageFolder layout: the first directory under
// the root names an image's class (files directly in the root have none).
//
// Images are decoded when they are used, not when the dataset is built, so a folder larger
// than memory works: building reads only each file's header, in parallel (its size, and a
// refusal naming the file when it is empty, not an image, or over the pixel limit), and
// verify() decodes everything once, in parallel, keeping nothing. An image whose shorter
// side exceeds max_side is shrunk (bicubic, antialiased) straight from its 8-bit decode.
//
// Needs libspng, libturbojpeg, libwebp, libtiff and libstb (the mae::data CMake target links them).
#ifndef MAE_DATASETS_IMAGE_FOLDER_HPP
#define MAE_DATASETS_IMAGE_FOLDER_HPP

#include "../data/loader.hpp"

#include "image_decode.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace mae {

struct ImageFolderOptions {
  Index channels = 3;                        // 1: luminance, 3: RGB
  Index max_side = 0;                        // shrink when the shorter side is longer; 0: never
  std::int64_t max_pixels = 64 * 1000000LL;  // refuse larger images (decompression bombs)
};

// The image extensions (torchvision's ImageFolder's IMG_EXTENSIONS, and GIF), in the order a
// shard's sample prefers them when it holds more than one (WebDataset's "jpg;png").
inline constexpr const char* kImageExtensions[] = {"jpg",  "jpeg", "png", "webp", "tif",
                                                   "tiff", "bmp",  "gif", "ppm",  "pgm"};

// The place of an extension (lower case, without the dot) in kImageExtensions; -1: not an image.
inline int image_extension_rank(const std::string& ext) {
  for (int k = 0; k < static_cast<int>(std::size(kImageExtensions)); ++k)
    if (ext == kImageExtensions[k]) return k;
  return -1;
}

inline bool is_image_file(const std::filesystem::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return !ext.empty() && image_extension_rank(ext.substr(1)) >= 0;
}

// An image's size as loaded: shrunk (keeping the aspect ratio) when its shorter side is over
// max_side (0: never). Returns (height, width).
inline std::pair<Index, Index> loaded_size(Index h0, Index w0, Index max_side) {
  const Index shorter = std::min(h0, w0);
  if (max_side <= 0 || shorter <= max_side) return {h0, w0};
  const double s = static_cast<double>(max_side) / static_cast<double>(shorter);
  return {std::max<Index>(1, static_cast<Index>(std::lround(static_cast<double>(h0) * s))),
          std::max<Index>(1, static_cast<Index>(std::lround(static_cast<double>(w0) * s)))};
}

// The size an image of header size s is loaded at (height, width), after the checks every
// image passes before anything is decoded: it has pixels, and no more than opt.max_pixels.
// `where` names the image in the refusal.
inline std::pair<Index, Index> checked_size(const std::string& where, ImageSize s, const ImageFolderOptions& opt) {
  if (s.width <= 0 || s.height <= 0) throw Error(where + ": the image has no pixels");
  if (static_cast<std::int64_t>(s.width) * s.height > opt.max_pixels)
    throw Error(where + ": " + std::to_string(s.width) + "x" + std::to_string(s.height) +
                " pixels, over the limit of " + std::to_string(opt.max_pixels) + " (raise max_pixels to accept it)");
  return loaded_size(s.height, s.width, opt.max_side);
}

// Decoded (H, W, C) bytes of size s -> (C, h, w) floats in [0, 1], shrunk (from the 8-bit
// pixels) when (h, w) is smaller.
inline void pixels_to_float(const unsigned char* px, ImageSize s, Index h, Index w, Index C, float* out) {
  const Index H = s.height, W = s.width;
  if (h == H && w == W) {
    for (Index c = 0; c < C; ++c)
      for (Index k = 0; k < H * W; ++k) out[c * H * W + k] = static_cast<float>(px[k * C + c]) / 255.0f;
  } else {
    resize_bicubic_strided(out, h, w, px, C, H, W, 1, W * C, C, 1.0 / 255.0, 0, 0, static_cast<double>(H),
                           static_cast<double>(W));
  }
}

class ImageFolder : public ImageDataset {
 public:
  // Every image under dir (recursively, following directory symlinks), sorted by path.
  ImageFolder(const std::string& dir, ImageFolderOptions opt) : name_(dir), opt_(opt) {
    namespace fs = std::filesystem;
    check_options();
    if (!fs::is_directory(dir)) throw Error("image folder '" + dir + "' is not a directory");
    std::vector<fs::path> files;
    try {
      for (const auto& e : fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink))
        if (e.is_regular_file() && is_image_file(e.path())) files.push_back(e.path());
    } catch (const fs::filesystem_error& e) {  // a symlink loop, a directory we may not read
      throw Error("image folder '" + dir + "': " + e.what());
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) throw Error("image folder '" + dir + "' holds no " + kImageFormats + " images");
    std::map<std::string, int> classes;
    std::vector<std::string> cls(files.size());
    for (std::size_t i = 0; i < files.size(); ++i) {
      const fs::path rel = files[i].lexically_relative(dir);
      if (std::distance(rel.begin(), rel.end()) > 1) cls[i] = rel.begin()->string();
      classes.emplace(cls[i], 0);
    }
    for (const auto& [c, id] : classes) classes_.push_back(c);
    for (std::size_t i = 0; i < classes_.size(); ++i) classes[classes_[i]] = static_cast<int>(i);
    std::vector<std::string> paths;
    std::vector<int> labels;
    for (std::size_t i = 0; i < files.size(); ++i)
      paths.push_back(files[i].string()), labels.push_back(classes[cls[i]]);
    add(paths, labels);
  }
  // The listed files (unlabelled), in the order given: for prediction.
  ImageFolder(const std::vector<std::string>& files, ImageFolderOptions opt) : name_("files"), opt_(opt) {
    check_options();
    if (files.empty()) throw Error("no image files given");
    add(files, std::vector<int>(files.size(), -1));
  }

  Index size() const override { return static_cast<Index>(items_.size()); }
  Index channels() const override { return opt_.channels; }
  Index height(Index i) const override { return items_[static_cast<std::size_t>(i)].h; }
  Index width(Index i) const override { return items_[static_cast<std::size_t>(i)].w; }
  int label(Index i) const override { return items_[static_cast<std::size_t>(i)].label; }
  std::string name() const override { return name_; }
  std::string item_name(Index i) const override { return items_[static_cast<std::size_t>(i)].path; }
  // The class directories, sorted (label k is classes()[k]); "" for images directly in the root.
  std::vector<std::string> class_names() const override { return classes_; }

  // For classification: every image is in a class directory, and there are at least two.
  void require_classes() const {
    if (!classes_.empty() && classes_.front().empty())
      for (const auto& it : items_)
        if (it.label == 0)
          throw Error(it.path + ": an image directly in '" + name_ +
                      "'; a labelled folder holds one directory per class (" + name_ + "/<class>/*.png)");
    if (classes_.size() < 2)
      throw Error("image folder '" + name_ + "' has " + std::to_string(classes_.size()) +
                  " class directory; classification needs at least two (" + name_ + "/<class>/*.png)");
  }

  // Decodes every image once (in parallel, nothing kept): an unreadable file stops here,
  // named, instead of in the middle of training.
  void verify() const { verify_images(*this); }

  void load(Index i, float* out) const override {
    const Item& it = items_[static_cast<std::size_t>(i)];
    const ImageSize expect{it.w0, it.h0};  // the file may have been replaced since the scan
    ImageSize s;
    const std::vector<unsigned char> px = decode_image(it.path, static_cast<int>(opt_.channels), &s, &expect);
    pixels_to_float(px.data(), s, it.h, it.w, opt_.channels, out);
  }

 private:
  struct Item {
    std::string path;
    int label = -1;
    int w0 = 0, h0 = 0;  // in the file
    Index h = 0, w = 0;  // as loaded (after shrinking)
  };

  void check_options() const {
    if (opt_.channels != 1 && opt_.channels != 3) throw Error("image folder: channels must be 1 (gray) or 3 (RGB)");
    if (opt_.max_side < 0 || opt_.max_pixels <= 0)
      throw Error("image folder: max_side and max_pixels must be positive");
  }
  // Every file's header, read in parallel (the scan opens each file once); the first
  // refusal in path order is the one reported, whatever the thread count.
  void add(const std::vector<std::string>& paths, const std::vector<int>& labels) {
    items_.resize(paths.size());
    parallel_for_first_error(static_cast<Index>(paths.size()), 64, [&](Index i) {
      const auto k = static_cast<std::size_t>(i);
      items_[k] = scan(paths[k], labels[k]);
    });
  }
  Item scan(const std::string& path, int label) const {
    namespace fs = std::filesystem;
    std::error_code ec;
    const auto bytes = fs::file_size(path, ec);
    if (ec) throw Error(path + ": cannot read (" + ec.message() + ")");
    if (bytes == 0) throw Error(path + ": empty file (0 bytes), not an image");
    Item it;
    it.path = path, it.label = label;
    const ImageSize s = read_image_size(path);
    it.w0 = s.width, it.h0 = s.height;
    std::tie(it.h, it.w) = checked_size(path, s, opt_);
    return it;
  }

  std::string name_;
  ImageFolderOptions opt_;
  std::vector<std::string> classes_;
  std::vector<Item> items_;
};

// Train and val folders must name the same classes, or labels would mean different things.
inline void require_same_classes(const ImageFolder& train, const ImageFolder& val) {
  const auto a = train.class_names(), b = val.class_names();
  if (a == b) return;
  std::set<std::string> sa(a.begin(), a.end()), sb(b.begin(), b.end());
  std::string only_train, only_val;
  for (const auto& c : sa)
    if (!sb.count(c)) only_train += " '" + c + "'";
  for (const auto& c : sb)
    if (!sa.count(c)) only_val += " '" + c + "'";
  throw Error("'" + train.name() + "' and '" + val.name() +
              "' have different classes:" + (only_train.empty() ? "" : " only in " + train.name() + ":" + only_train) +
              (only_val.empty() ? "" : " only in " + val.name() + ":" + only_val));
}

}  // namespace mae

#endif  // MAE_DATASETS_IMAGE_FOLDER_HPP
