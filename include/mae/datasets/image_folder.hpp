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
#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <sstream>
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

// The order of an image folder's files: std::filesystem::path's (component by component), on
// the strings of relative paths: as a string comparison where '/' comes before every character.
inline bool path_order(const std::string& a, const std::string& b) {
  const std::size_t n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i)
    if (a[i] != b[i]) {
      const auto rank = [](char c) { return c == '/' ? 0 : static_cast<int>(static_cast<unsigned char>(c)) + 1; };
      return rank(a[i]) < rank(b[i]);
    }
  return a.size() < b.size();
}

class ImageFolder : public ImageDataset {
 public:
  // Every image under dir (recursively, following directory symlinks), sorted by path. With an
  // index (data/image_index.hpp), a file's header is read only when the file changed since the
  // index saw it, and the index is brought up to date (cache->save() writes it).
  ImageFolder(const std::string& dir, ImageFolderOptions opt, ImageIndexCache* cache = nullptr)
      : name_(dir), opt_(opt) {
    namespace fs = std::filesystem;
    check_options();
    if (!fs::is_directory(dir)) throw Error("image folder '" + dir + "' is not a directory");
    // Each file's path below dir (every path the iterator gives begins with dir), as strings:
    // fs::path's component-wise comparison and copies cost more than the scan itself when the
    // headers come from an index.
    std::vector<std::string> rel;
    try {
      for (const auto& e : fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink))
        if (e.is_regular_file() && is_image_file(e.path())) {
          const std::string& p = e.path().native();
          const std::size_t from = p.find_first_not_of('/', dir.size());
          rel.push_back(p.substr(from == std::string::npos ? p.size() : from));
        }
    } catch (const fs::filesystem_error& e) {  // a symlink loop, a directory we may not read
      throw Error("image folder '" + dir + "': " + e.what());
    }
    std::sort(rel.begin(), rel.end(), path_order);
    if (rel.empty()) throw Error("image folder '" + dir + "' holds no " + kImageFormats + " images");
    std::map<std::string, int> classes;
    std::vector<std::string> cls(rel.size());
    for (std::size_t i = 0; i < rel.size(); ++i) {
      const std::size_t slash = rel[i].find('/');
      if (slash != std::string::npos) cls[i] = rel[i].substr(0, slash);
      classes.emplace(cls[i], 0);
    }
    for (const auto& [c, id] : classes) classes_.push_back(c);
    for (std::size_t i = 0; i < classes_.size(); ++i) classes[classes_[i]] = static_cast<int>(i);
    std::vector<std::string> paths, keys;
    std::vector<int> labels;
    std::string root = fs::absolute(dir).lexically_normal().native();
    while (root.size() > 1 && root.back() == '/') root.pop_back();
    const std::string sep = dir.empty() || dir.back() == '/' ? "" : "/";
    for (std::size_t i = 0; i < rel.size(); ++i) {
      paths.push_back(dir + sep + rel[i]), labels.push_back(classes[cls[i]]);
      if (cache) keys.push_back(root + (root == "/" ? "" : "/") + rel[i]);
    }
    add(paths, labels, cache, keys);
    if (cache) {
      std::vector<std::pair<std::string, ImageIndexCache::Header>> headers(items_.size());
      for (std::size_t i = 0; i < items_.size(); ++i) headers[i] = {keys[i], {stamps_[i], items_[i].w0, items_[i].h0}};
      cache->replace_folder(root, std::move(headers), /*all_found=*/headers_read_ == 0);
    }
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
  // A hash of every file's path, size and times as the scan saw them.
  std::string content_stamp() const override { return stamp_; }
  // How many headers the scan read (the others came from the index).
  Index headers_read() const { return headers_read_; }

  // The folder as text (its name, classes, stamp, and each image's path, label and size in the
  // file), for another process: from_index(index()) is the same folder, made without reading
  // any file.
  std::string index() const {
    std::string t = std::string(kIndexFirstLine) + "\n" + escape_path(name_) + "\n" + stamp_ + "\n" +
                    std::to_string(classes_.size()) + "\n";
    for (const auto& c : classes_) t += escape_path(c) + "\n";
    t += std::to_string(items_.size()) + "\n";
    for (const auto& it : items_)
      t += std::to_string(it.label) + " " + std::to_string(it.w0) + " " + std::to_string(it.h0) + " " +
           escape_path(it.path) + "\n";
    return t;
  }
  static ImageFolder from_index(const std::string& text, ImageFolderOptions opt) {
    std::istringstream in(text);
    std::string line;
    const auto next = [&](const char* what) {
      if (!std::getline(in, line)) throw Error(std::string("an image folder's index ends before its ") + what);
      return line;
    };
    const auto path = [&](const char* what) {
      const auto p = unescape_path(next(what));
      if (!p) throw Error(std::string("an image folder's index has a bad ") + what);
      return *p;
    };
    const auto count = [&](const char* what) {
      const std::string text = next(what);  // (kept: strtoll's end points into it)
      char* end = nullptr;
      const long long n = std::strtoll(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || n < 0 || n > (1LL << 40))
        throw Error(std::string("an image folder's index has a bad ") + what);
      return static_cast<std::size_t>(n);
    };
    if (next("first line") != kIndexFirstLine) throw Error("not an image folder's index");
    ImageFolder f(path("name"), opt, Tag{});
    f.stamp_ = next("stamp");
    for (std::size_t k = count("class count"); k > 0; --k) f.classes_.push_back(path("class"));
    f.items_.resize(count("image count"));
    for (Item& it : f.items_) {
      std::istringstream l(next("images"));
      std::string rest;
      if (!(l >> it.label >> it.w0 >> it.h0) || l.get() != ' ' || !std::getline(l, rest) || it.label < -1 ||
          it.label >= static_cast<int>(f.classes_.size()))
        throw Error("an image folder's index has a bad image line: " + line);
      const auto p = unescape_path(rest);
      if (!p) throw Error("an image folder's index has a bad path: " + line);
      it.path = *p;
      std::tie(it.h, it.w) = checked_size(it.path, ImageSize{it.w0, it.h0}, f.opt_);
    }
    if (f.items_.empty()) throw Error("an image folder's index holds no image");
    return f;
  }

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

  static constexpr const char* kIndexFirstLine = "mae image folder 1";
  struct Tag {};
  ImageFolder(std::string name, ImageFolderOptions opt, Tag) : name_(std::move(name)), opt_(opt) { check_options(); }

  void check_options() const {
    if (opt_.channels != 1 && opt_.channels != 3) throw Error("image folder: channels must be 1 (gray) or 3 (RGB)");
    if (opt_.max_side < 0 || opt_.max_pixels <= 0)
      throw Error("image folder: max_side and max_pixels must be positive");
  }
  // Every file's header, read in parallel (the scan opens each file once), or taken from the
  // index where the file's stamp is the one it saved (keys[i]: file i's absolute path); the
  // first refusal in path order is the one reported, whatever the thread count.
  void add(const std::vector<std::string>& paths, const std::vector<int>& labels,
           const ImageIndexCache* cache = nullptr, const std::vector<std::string>& keys = {}) {
    items_.resize(paths.size()), stamps_.resize(paths.size());
    std::vector<char> read(paths.size(), 0);
    parallel_for_first_error(static_cast<Index>(paths.size()), 64, [&](Index i) {
      const auto k = static_cast<std::size_t>(i);
      Item& it = items_[k];
      it.path = paths[k], it.label = labels[k];
      const FileStamp st = stamps_[k] = file_stamp(it.path);
      if (st.bytes == 0) throw Error(it.path + ": empty file (0 bytes), not an image");
      ImageSize s;
      if (const auto saved = cache ? cache->find(keys[k], st) : std::nullopt)
        s = ImageSize{saved->width, saved->height};
      else
        s = read_image_size(it.path), read[k] = 1;
      it.w0 = s.width, it.h0 = s.height;
      std::tie(it.h, it.w) = checked_size(it.path, s, opt_);
    });
    headers_read_ = std::count(read.begin(), read.end(), 1);
    Fnv1a h;
    for (std::size_t k = 0; k < items_.size(); ++k) h.file(items_[k].path, stamps_[k]);
    stamp_ = h.hex();
  }

  std::string name_;
  ImageFolderOptions opt_;
  std::vector<std::string> classes_;
  std::vector<Item> items_;
  std::vector<FileStamp> stamps_;  // as the scan saw them (empty when made from an index)
  std::string stamp_;              // content_stamp()
  Index headers_read_ = 0;
};

// An image folder made once for all processes (p): the first scans it (with the index `cache`,
// when given, which only it reads and writes) and sends the result to the others, which read no
// file. One process (p.shares() false): a scan, as ImageFolder's constructor.
inline std::unique_ptr<ImageFolder> open_image_folder(const std::string& dir, ImageFolderOptions opt,
                                                      ImageIndexCache* cache = nullptr, const DataParallel& p = {}) {
  return made_once<ImageFolder>(
      p, [&] { return std::make_unique<ImageFolder>(dir, opt, cache); }, [](const ImageFolder& f) { return f.index(); },
      [&](const std::string& text) { return ImageFolder::from_index(text, opt); },
      "image folder '" + dir + "': the first process could not scan it (see its message)");
}

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
