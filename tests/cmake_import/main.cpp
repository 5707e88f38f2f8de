#include <mae/mae.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
  mae::MaskedAutoencoder<mae::Config<8, 4, 1, 8, 1, 2, 8, 1, 2>> model;
  std::vector<float> img(2 * 64, 0.5f);
  const float loss = model.forward(mae::images(img.data(), 2, 1, 8, 8));
  model.backward();
  std::printf("import test: loss %f over %lld parameters\n", loss, static_cast<long long>(model.parameters().size()));
  return std::isfinite(loss) ? 0 : 1;
}
