// Writes a small ImageFolder from Debian's Fashion-MNIST for the end-to-end tests of `mae`:
// DIR/train/<class>/<index>.png and DIR/val/<class>/<index>.png (28x28 grayscale), or with
// --tinted-jpeg, 3-channel JPEGs tinted by class and upscaled to 40x36 (so the RGB presets
// convert sizes and channels).
//   usage: make_image_folder DIR TRAIN_PER_CLASS VAL_PER_CLASS [--tinted-jpeg]
#include <mae/data.hpp>

#include <stb/stb_image_write.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s DIR TRAIN_PER_CLASS VAL_PER_CLASS [--tinted-jpeg]\n", argv[0]);
    return 2;
  }
  namespace fs = std::filesystem;
  const fs::path dir = argv[1];
  const int per_class[2] = {std::atoi(argv[2]), std::atoi(argv[3])};
  const bool jpeg = argc > 4 && std::string(argv[4]) == "--tinted-jpeg";
  try {
    const char* splits[2] = {"train", "val"};
    for (int s = 0; s < 2; ++s) {
      const mae::FashionMnist fm(mae::FashionMnist::kDefaultDir, s == 0 ? "train" : "t10k");
      std::vector<std::string> names = fm.class_names();
      for (auto& n : names)
        for (char& c : n)
          if (c == '/') c = '-';
      std::vector<int> count(names.size(), 0);
      std::vector<float> px(28 * 28), big(3 * 36 * 40);
      for (mae::Index i = 0; i < fm.size(); ++i) {
        const int y = fm.label(i);
        if (count[y] >= per_class[s]) continue;
        ++count[y];
        const fs::path cls = dir / splits[s] / names[y];
        fs::create_directories(cls);
        fm.load(i, px.data());
        char file[32];
        if (!jpeg) {
          std::vector<unsigned char> g(px.size());
          for (std::size_t k = 0; k < px.size(); ++k) g[k] = static_cast<unsigned char>(px[k] * 255.0f + 0.5f);
          std::snprintf(file, sizeof file, "%05lld.png", static_cast<long long>(i));
          if (!stbi_write_png((cls / file).string().c_str(), 28, 28, 1, g.data(), 28)) throw mae::Error("PNG write");
        } else {
          // tint: class y scales the three channels differently; upscale to 40 wide, 36 high
          std::vector<float> rgb(3 * 28 * 28);
          for (int c = 0; c < 3; ++c)
            for (int k = 0; k < 28 * 28; ++k) rgb[c * 784 + k] = px[k] * (0.4f + 0.6f * ((y + c) % 3) / 2.0f);
          mae::resize_bicubic(big.data(), 36, 40, rgb.data(), 3, 28, 28, 0, 0, 28, 28);
          std::vector<unsigned char> hwc(3 * 36 * 40);
          for (int k = 0; k < 36 * 40; ++k)
            for (int c = 0; c < 3; ++c)
              hwc[k * 3 + c] = static_cast<unsigned char>(big[c * 36 * 40 + k] * 255.0f + 0.5f);
          std::snprintf(file, sizeof file, "%05lld.jpg", static_cast<long long>(i));
          if (!stbi_write_jpg((cls / file).string().c_str(), 40, 36, 3, hwc.data(), 90)) throw mae::Error("JPEG write");
        }
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
