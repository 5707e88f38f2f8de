// The mae::data target from outside: the data headers (zlib, stb) and a batch through the
// loader into a model.
#include <mae/data.hpp>
#include <mae/mae.hpp>

#include <cmath>
#include <cstdio>

namespace {
struct Gradient : mae::ImageDataset {  // 4 images of 8x8 horizontal ramps
  mae::Index size() const override { return 4; }
  mae::Index channels() const override { return 1; }
  mae::Index height(mae::Index) const override { return 8; }
  mae::Index width(mae::Index) const override { return 8; }
  void load(mae::Index i, float* out) const override {
    for (int k = 0; k < 64; ++k) out[k] = static_cast<float>((k % 8 + i) % 8) / 7.0f;
  }
  std::string name() const override { return "ramps"; }
};
}  // namespace

int main() {
  Gradient ds;
  mae::BatchLoader loader(ds, 8, 2, /*seed=*/1);
  std::vector<float> batch(2 * 64);
  loader.batch(0, 0, batch.data());
  mae::MaskedAutoencoder<mae::Config<8, 4, 1, 8, 1, 2, 8, 1, 2>> model;
  const float loss = model.forward(mae::images(batch.data(), 2, 1, 8, 8));
  std::printf("data import test: loss %f\n", loss);
  return std::isfinite(loss) ? 0 : 1;
}
