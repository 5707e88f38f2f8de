// mae/data/image_folder.hpp — a dataset of PNG/JPEG/BMP/... files under a directory (stb_image),
// converted to the model's channel count. Subdirectory names become labels, as
// torchvision's ImageFolder. Every file is decoded when the dataset is built, so an
// unreadable image is reported (by name) before training starts; images larger than
// max_side on their shorter side are shrunk (bicubic, antialiased) to bound memory.
//
// Needs stb_image's implementation: link Debian's libstb (the mae::data CMake target does).
#ifndef MAE_DATA_IMAGE_FOLDER_HPP
#define MAE_DATA_IMAGE_FOLDER_HPP

#include "loader.hpp"

#include <stb/stb_image.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace mae {

class ImageFolder : public ImageDataset {
 public:
  ImageFolder(const std::string& dir, Index channels, Index max_side = 512) : dir_(dir), C_(channels) {
    namespace fs = std::filesystem;
    if (channels != 1 && channels != 3) throw Error("image folder: channels must be 1 (gray) or 3 (RGB)");
    if (!fs::is_directory(dir)) throw Error("image folder '" + dir + "' is not a directory");
    std::vector<fs::path> files;
    for (const auto& e : fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink)) {
      if (!e.is_regular_file()) continue;
      std::string ext = e.path().extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
      if (ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp" || ext == ".gif" || ext == ".tga" ||
          ext == ".ppm" || ext == ".pgm")
        files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) throw Error("image folder '" + dir + "' holds no PNG/JPEG/BMP/GIF/TGA/PNM images");
    std::map<std::string, int> classes;
    for (const auto& f : files) {
      const std::string cls = f.parent_path() == fs::path(dir) ? "" : f.parent_path().filename().string();
      classes.emplace(cls, 0);
    }
    int next = 0;
    for (auto& [name, id] : classes) id = next++;
    for (const auto& f : files) {
      int w = 0, h = 0, n = 0;
      unsigned char* px = stbi_load(f.string().c_str(), &w, &h, &n, static_cast<int>(C_));
      if (!px) throw Error(f.string() + ": unreadable image (" + std::string(stbi_failure_reason()) + ")");
      Image img;
      img.h = h, img.w = w;
      std::vector<float> chw(static_cast<std::size_t>(C_ * h * w));
      for (Index c = 0; c < C_; ++c)
        for (Index i = 0; i < static_cast<Index>(h) * w; ++i) chw[c * h * w + i] = px[i * C_ + c] / 255.0f;
      stbi_image_free(px);
      const Index shorter = std::min(h, w);
      if (shorter > max_side) {  // shrink, keeping the aspect ratio
        const double s = static_cast<double>(max_side) / static_cast<double>(shorter);
        img.h = std::max<Index>(1, static_cast<Index>(std::lround(h * s)));
        img.w = std::max<Index>(1, static_cast<Index>(std::lround(w * s)));
        std::vector<float> small(static_cast<std::size_t>(C_ * img.h * img.w));
        resize_bicubic(small.data(), img.h, img.w, chw.data(), C_, h, w, 0, 0, h, w);
        chw.swap(small);
      }
      img.pixels.resize(chw.size());
      for (std::size_t i = 0; i < chw.size(); ++i)
        img.pixels[i] = static_cast<unsigned char>(std::lround(std::clamp(chw[i], 0.0f, 1.0f) * 255.0f));
      const std::string cls = f.parent_path() == fs::path(dir) ? "" : f.parent_path().filename().string();
      img.label = classes[cls];
      images_.push_back(std::move(img));
    }
  }

  Index size() const override { return static_cast<Index>(images_.size()); }
  Index channels() const override { return C_; }
  Index height(Index i) const override { return images_[static_cast<std::size_t>(i)].h; }
  Index width(Index i) const override { return images_[static_cast<std::size_t>(i)].w; }
  void load(Index i, float* out) const override {
    const Image& img = images_[static_cast<std::size_t>(i)];
    for (std::size_t k = 0; k < img.pixels.size(); ++k) out[k] = img.pixels[k] / 255.0f;
  }
  int label(Index i) const override { return images_[static_cast<std::size_t>(i)].label; }
  std::string name() const override { return dir_; }

 private:
  struct Image {
    Index h = 0, w = 0;
    int label = 0;
    std::vector<unsigned char> pixels;  // (C, h, w)
  };
  std::string dir_;
  Index C_;
  std::vector<Image> images_;
};

}  // namespace mae

#endif  // MAE_DATA_IMAGE_FOLDER_HPP
