// Parity with PyTorch: fixtures written by tests/make_fixtures.py (the official MAE
// semantics in PyTorch) hold weights, images, noise, loss, pred, mask and every parameter
// gradient. The float model must reproduce each tensor within 1e-5 absolute + 1e-4 relative.
#include "test_util.hpp"

#include <cstdio>

using mae::Index;

namespace {
constexpr double kAtol = 1e-5, kRtol = 1e-4;

std::string fixture(const std::string& name) { return std::string(MAE_FIXTURE_DIR) + "/" + name + ".safetensors"; }

// Compares `ours` with the fixture tensor `name`; the worst errors go into `table`.
template <class S>
void expect_close(const mae::safetensors::File& f, const std::string& name, const S* ours, Index n,
                  const mae::Shape& shape, std::string& table) {
  mae::Shape s;
  const std::vector<float> ref = f.read<float>(name, &s);
  INFO(name);
  REQUIRE(s == shape);
  REQUIRE(static_cast<Index>(ref.size()) == n);
  const auto r = mae_test::compare(ours, ref.data(), n, kAtol, kRtol);
  char line[200];
  std::snprintf(line, sizeof line, "\n  %-40s %8lld values  worst abs %.2e  worst rel %.2e%s", name.c_str(),
                static_cast<long long>(n), r.max_abs, r.max_rel, r.bad ? "  OUTSIDE TOLERANCE" : "");
  table += line;
  INFO(r.str());
  CHECK(r.bad == 0);
}

template <class Cfg>
void check_fixture(const std::string& fixture_name) {
  using M = mae::MaskedAutoencoder<Cfg>;
  const mae::safetensors::File f(fixture(fixture_name));
  REQUIRE(f.metadata().at("mae.config") == Cfg::name());
  const double ratio = std::stod(f.metadata().at("mask_ratio"));
  const bool norm_pix = f.metadata().at("norm_pix_loss") == "1";
  constexpr Index L = Cfg::num_patches, P = Cfg::patch_dim, D = Cfg::embed_dim, Dd = Cfg::decoder_embed_dim;
  M model(typename M::Options{norm_pix, 0});
  std::string table = fixture_name + " (" + Cfg::name() + "):";
  // our fixed position tables equal PyTorch's before anything is loaded
  expect_close(f, "pos_embed", model.pos_embed(), (1 + L) * D, {1, 1 + L, D}, table);
  expect_close(f, "decoder_pos_embed", model.decoder_pos_embed(), (1 + L) * Dd, {1, 1 + L, Dd}, table);
  model.load(f, /*strict=*/false);  // the fixture also holds inputs, outputs and gradients
  mae::Shape ishape;
  const std::vector<float> imgs = f.read<float>("input.imgs", &ishape);
  const std::vector<float> noise = f.read<float>("input.noise");
  const Index N = ishape[0];
  const float loss = model.forward(mae::images(imgs.data(), N, ishape[1], ishape[2], ishape[3]), ratio, noise.data());
  expect_close(f, "output.loss", &loss, 1, {1}, table);
  expect_close(f, "output.pred", model.pred().data(), N * L * P, {N, L, P}, table);
  expect_close(f, "output.mask", model.mask().data(), N * L, {N, L}, table);
  model.zero_grad();
  model.backward();
  for (const auto& t : model.gradients().tensors())
    expect_close(f, "grad." + t.name, model.gradients().data() + t.offset, t.size, t.shape, table);
  MESSAGE(table);
}
}  // namespace

TEST_CASE("parity with PyTorch: 1 channel, pixel loss, ratio 0.75") {
  check_fixture<mae::Config<8, 2, 1, 16, 2, 2, 16, 1, 2>>("tiny_gray");
}
TEST_CASE("parity with PyTorch: 3 channels, norm_pix, ratio 0.6") {
  check_fixture<mae::Config<12, 4, 3, 24, 2, 3, 16, 2, 2>>("small_rgb_normpix");
}
TEST_CASE("parity with PyTorch: 28x28 grayscale, patch 7, norm_pix, ratio 0.75") {
  check_fixture<mae::Config<28, 7, 1, 32, 2, 4, 16, 1, 2>>("gray28_normpix");
}
TEST_CASE("parity with PyTorch: 3 channels, pixel loss, ratio 0.5, batch 4") {
  check_fixture<mae::Config<16, 4, 3, 64, 2, 4, 32, 1, 2>>("rgb16_ratio50");
}
