// Parity with PyTorch: fixtures written by tests/make_fixtures.py (the official MAE
// semantics in PyTorch) hold weights, images, noise, loss, pred, mask and every parameter
// gradient. The float model must reproduce each tensor within 1e-5 absolute + 1e-4 relative.
#include "test_util.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>

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

// bf16 mixed precision against PyTorch's CPU autocast (torch.autocast("cpu", torch.bfloat16)),
// from a fixture that holds the same step in both (make_fixtures.py: make_autocast).
//
// The two recipes round the same operands (every linear's and attention's products: bf16
// operands, fp32 sums), but autocast also rounds each product's *output* to bf16 and runs the
// softmax and GELU on those bf16 values, where ours keep fp32. So neither is the other's exact
// result: both are fp32's step plus bf16 rounding noise. For each tensor, with e_ac the relative
// distance of autocast from fp32 (||ac - fp32|| / ||fp32||, Frobenius, measured in the fixture):
//   1. ours bf16 is no further from fp32 than 2 e_ac (our rounding is a subset of autocast's);
//   2. ours bf16 is within 3 e_ac of autocast (two noises of size <= e_ac, with margin);
//   3. ours bf16 differs from ours fp32 (the operands really are rounded).
// e_ac is 0.3-3% here; a wrong gradient (a dropped term, a factor) is off by O(1) and fails.
TEST_CASE("bf16 mixed precision: as close to fp32 as PyTorch's CPU autocast, and close to it") {
  using Cfg = mae::Config<16, 4, 3, 64, 2, 4, 32, 1, 2>;
  using M = mae::MaskedAutoencoder<Cfg>;
  const mae::safetensors::File f(fixture("rgb16_autocast_bf16"));
  REQUIRE(f.metadata().at("mae.config") == Cfg::name());
  REQUIRE(f.metadata().at("autocast") == "cpu bfloat16");
  const double ratio = std::stod(f.metadata().at("mask_ratio"));
  mae::Shape ishape;
  const std::vector<float> imgs = f.read<float>("input.imgs", &ishape);
  const std::vector<float> noise = f.read<float>("input.noise");
  const Index N = ishape[0];
  struct Step {
    std::vector<float> loss, pred, grads;
    std::vector<mae::TensorInfo> tensors;  // names and offsets of grads
  };
  const auto run = [&](mae::Precision p) {
    M model(M::Options{false, 0, p});
    model.load(f, /*strict=*/false);
    Step s;
    s.loss = {model.forward(mae::images(imgs.data(), N, ishape[1], ishape[2], ishape[3]), ratio, noise.data())};
    s.pred.assign(model.pred().data(), model.pred().data() + model.pred().size());
    model.zero_grad();
    model.backward();
    s.grads.assign(model.gradients().data(), model.gradients().data() + model.gradients().size());
    s.tensors = model.gradients().tensors();
    return s;
  };
  const Step ours16 = run(mae::Precision::bf16), ours32 = run(mae::Precision::fp32);
  const auto dist = [](const float* a, const float* b, Index n) { return mae_test::rel_dist(a, b, n); };
  std::string table = "bf16 against autocast (relative Frobenius distances):";
  const auto check = [&](const std::string& name, const float* o16, const float* o32, Index n) {
    const std::vector<float> ac = f.read<float>(name), fp = f.read<float>("fp32." + name);
    INFO(name);
    REQUIRE(static_cast<Index>(ac.size()) == n);
    const double e_ac = dist(ac.data(), fp.data(), n), e_ours = dist(o16, fp.data(), n),
                 e_between = dist(o16, ac.data(), n);
    char line[200];
    std::snprintf(line, sizeof line, "\n  %-34s autocast-fp32 %.2e  ours-fp32 %.2e  ours-autocast %.2e", name.c_str(),
                  e_ac, e_ours, e_between);
    table += line;
    CHECK(dist(o32, fp.data(), n) < 1e-4);  // our fp32 step is PyTorch's (parity above)
    CHECK(e_ours <= 2 * e_ac);
    CHECK(e_between <= 3 * e_ac);
    CHECK(std::memcmp(o16, o32, sizeof(float) * n) != 0);
  };
  check("output.loss", ours16.loss.data(), ours32.loss.data(), 1);
  check("output.pred", ours16.pred.data(), ours32.pred.data(), static_cast<Index>(ours16.pred.size()));
  for (const auto& t : ours16.tensors)
    check("grad." + t.name, ours16.grads.data() + t.offset, ours32.grads.data() + t.offset, t.size);
  MESSAGE(table);
}

TEST_CASE("bf16 mixed precision: bitwise identical with 1 and 2 threads; refused for double models") {
  using M = mae::mae_vit_tiny_28x28_gray;
  const Index N = 16;
  std::vector<float> img(N * 28 * 28);
  mae::Rng r(32);
  for (auto& v : img) v = static_cast<float>(r.normal());
  const auto run = [&](int threads) {
    mae::set_num_threads(threads);
    M m(M::Options{true, 7, mae::Precision::bf16});
    std::vector<float> out{m.forward(mae::images(img.data(), N, 1, 28, 28), 0.75)};
    m.backward();
    out.insert(out.end(), m.pred().data(), m.pred().data() + m.pred().size());
    out.insert(out.end(), m.gradients().data(), m.gradients().data() + m.gradients().size());
    return out;
  };
  const int before = mae::max_threads();
  const std::vector<float> one = run(1), two = run(2);
  mae::set_num_threads(before);
  REQUIRE(one.size() == two.size());
  CHECK(std::memcmp(one.data(), two.data(), sizeof(float) * one.size()) == 0);
  using D = mae::MaskedAutoencoder<mae::presets::vit_tiny_28x28_gray<double>>;
  CHECK_THROWS_WITH_AS(D(D::Options{false, 0, mae::Precision::bf16}), doctest::Contains("need a float model"),
                       mae::Error);
}
