// A second translation unit including the same headers: a missing `inline` in a header
// becomes a duplicate-symbol link error of mae_tests.
#include <mae/mae.hpp>

#include <doctest/doctest.h>

namespace {
float tiny_loss_from_second_tu() {
  mae::MaskedAutoencoder<mae::Config<8, 4, 1, 8, 1, 2, 8, 1, 2>> m;
  std::vector<float> img(64, 0.25f);
  return m.forward(mae::images(img.data(), 1, 1, 8, 8));
}
}  // namespace

TEST_CASE("the headers link from two translation units") { CHECK(std::isfinite(tiny_loss_from_second_tu())); }
