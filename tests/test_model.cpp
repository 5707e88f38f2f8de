// models/masked_autoencoder.hpp: gradient check of the whole model in double, presets,
// initialization, input checks, determinism across thread counts, the masking noise.
#include "test_util.hpp"

#include <cstring>

using mae::Index;
using mae_test::grad_check;
using mae_test::GradTarget;
using mae_test::random_vector;
using V = std::vector<double>;

namespace {
// Tiny, every part present: 8x8 grayscale, patch 2 (L = 16), 2 encoder blocks, 1 decoder block.
using TinyD = mae::Config<8, 2, 1, 8, 2, 2, 8, 1, 2, 4, double>;
using TinyRgbD = mae::Config<6, 3, 3, 8, 1, 2, 4, 1, 1, 2, double>;

template <class Cfg>
void model_grad_check(bool norm_pix, double ratio) {
  using M = mae::MaskedAutoencoder<Cfg>;
  M model(typename M::Options{norm_pix, 3});
  const Index N = 2, L = Cfg::num_patches, HW = Cfg::img_size;
  // moderate weights so that every path carries gradient
  V init = random_vector(model.parameters().size(), 21, 0.2);
  std::copy(init.begin(), init.end(), model.parameters().data());
  V img = random_vector(N * Cfg::in_chans * HW * HW, 22), noise(N * L);
  mae::Rng r(23);
  for (auto& v : noise) v = r.uniform();
  const auto batch = mae::images(img.data(), N, Cfg::in_chans, HW, HW);
  auto fwd = [&] { return V{model.forward(batch, ratio, noise.data())}; };
  auto bwd = [&](const V& G) { model.backward(G[0]); };
  std::vector<GradTarget> targets;
  for (const auto& t : model.parameters().tensors())
    targets.push_back({t.name, model.parameters().data() + t.offset, model.gradients().data() + t.offset, t.size});
  auto rep = grad_check(fwd, bwd, targets);
  INFO(rep.str());
  CHECK(rep.ok);
  CHECK(rep.checked == Cfg::num_parameters());
}
}  // namespace

TEST_CASE("whole model: gradient check of every parameter (pixel loss, ratio 0.75)") {
  model_grad_check<TinyD>(false, 0.75);
}
TEST_CASE("whole model: gradient check of every parameter (norm_pix, ratio 0.5, RGB)") {
  model_grad_check<TinyRgbD>(true, 0.5);
}

TEST_CASE("backward reports its gradients as they become final, from the store's end (data-parallel overlap)") {
  using M = mae::MaskedAutoencoder<TinyD>;
  M model(typename M::Options{true, 3});
  V img = random_vector(2 * TinyD::img_size * TinyD::img_size, 24);
  model.forward(mae::images(img.data(), 2, 1, TinyD::img_size, TinyD::img_size), 0.5);
  std::vector<std::string> firsts{"decoder_pred.weight", "decoder_norm.weight"};
  for (int b = TinyD::decoder_depth - 1; b >= 0; --b)
    firsts.push_back("decoder_blocks." + std::to_string(b) + ".norm1.weight");
  firsts.push_back("decoder_embed.weight");  // with mask_token after it
  firsts.push_back("norm.weight");
  for (int b = TinyD::depth - 1; b >= 0; --b) firsts.push_back("blocks." + std::to_string(b) + ".norm1.weight");
  mae_test::check_gradients_ready(
      model, [&](const mae::GradientsReady& ready) { model.zero_grad(), model.backward(1.0, ready); }, firsts);
}

TEST_CASE("zero_grad zeroes every gradient; backward then accumulates (twice = double)") {
  using M = mae::MaskedAutoencoder<TinyRgbD>;
  const Index N = 2, HW = TinyRgbD::img_size;
  V img = random_vector(N * 3 * HW * HW, 40), noise = random_vector(N * TinyRgbD::num_patches, 41);
  const auto batch = mae::images(img.data(), N, 3, HW, HW);
  M m(M::Options{true, 9});
  const auto grads = [&] { return V(m.gradients().data(), m.gradients().data() + m.gradients().size()); };
  const double* g = m.gradients().data();  // a pointer taken before zero_grad sees what it does
  std::fill(m.gradients().data(), m.gradients().data() + m.gradients().size(), 7.0);
  m.zero_grad();
  CHECK(grads() == V(static_cast<std::size_t>(m.gradients().size()), 0.0));
  CHECK(g[0] == 0.0);
  CHECK(m.grads().encoder.cls_token[0] == 0.0);  // through the named views too
  m.forward(batch, 0.5, noise.data());
  m.backward();
  const V once = grads();
  CHECK(std::any_of(once.begin(), once.end(), [](double v) { return v != 0.0; }));
  m.backward();  // accumulates: the same gradient added again (summed in another order: to rounding)
  const V twice = grads();
  for (std::size_t i = 0; i < once.size(); ++i)
    REQUIRE(std::abs(twice[i] - 2 * once[i]) <= 1e-12 * (1 + std::abs(once[i])));
}

TEST_CASE("presets: parameter counts match the reference table") {
  CHECK(mae::presets::vit_base_patch16_dec512d8b<>::num_parameters() == 111655680);
  CHECK(mae::presets::vit_large_patch16_dec512d8b<>::num_parameters() == 329239296);
  CHECK(mae::presets::vit_huge_patch14_dec512d8b<>::num_parameters() == 656613964);
  // the visitor (what is allocated and saved) agrees with the formula, without allocating
  auto count = [](auto* model_type) {
    using M = std::remove_pointer_t<decltype(model_type)>;
    typename M::Params p;
    std::int64_t n = 0;
    M::visit(p, [&](const std::string&, const mae::Shape& s, float*&) { n += mae::shape_numel(s); });
    return n;
  };
  CHECK(count(static_cast<mae::mae_vit_base_patch16_dec512d8b*>(nullptr)) == 111655680);
  CHECK(count(static_cast<mae::mae_vit_large_patch16_dec512d8b*>(nullptr)) == 329239296);
  CHECK(count(static_cast<mae::mae_vit_huge_patch14_dec512d8b*>(nullptr)) == 656613964);
  mae::mae_vit_tiny_28x28_gray toy;
  CHECK(toy.parameters().size() == mae::presets::vit_tiny_28x28_gray<>::num_parameters());
  CHECK(toy.parameters().find("blocks.5.attn.qkv.weight").shape == mae::Shape{576, 192});
  CHECK(toy.parameters().find("patch_embed.proj.weight").shape == mae::Shape{192, 1, 4, 4});
  CHECK(toy.parameters().find("decoder_pred.weight").shape == mae::Shape{16, 128});
}

TEST_CASE("initialization follows the reference and depends only on the seed") {
  mae::mae_vit_tiny_28x28_gray a(mae::mae_vit_tiny_28x28_gray::Options{false, 5});
  mae::mae_vit_tiny_28x28_gray b(mae::mae_vit_tiny_28x28_gray::Options{false, 5});
  mae::mae_vit_tiny_28x28_gray c(mae::mae_vit_tiny_28x28_gray::Options{false, 6});
  const auto& P = a.parameters();
  CHECK(std::memcmp(P.data(), b.parameters().data(), sizeof(float) * P.size()) == 0);
  CHECK(std::memcmp(P.data(), c.parameters().data(), sizeof(float) * P.size()) != 0);
  auto stats = [&](const std::string& name) {
    const auto& t = P.find(name);
    const float* x = P.ptr(name);
    double mx = 0, s2 = 0, s1 = 0;
    for (Index i = 0; i < t.size; ++i) mx = std::max(mx, std::abs(double(x[i]))), s1 += x[i], s2 += double(x[i]) * x[i];
    return std::array<double, 3>{mx, s1 / t.size, std::sqrt(s2 / t.size)};
  };
  // xavier_uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out)), std a / sqrt(3)
  const double a_qkv = std::sqrt(6.0 / (192 + 576));
  auto q = stats("blocks.0.attn.qkv.weight");
  CHECK(q[0] <= a_qkv);
  CHECK(q[0] > 0.99 * a_qkv);
  CHECK(q[2] == doctest::Approx(a_qkv / std::sqrt(3.0)).epsilon(0.02));
  const double a_pe = std::sqrt(6.0 / (16 + 192));  // patch_embed on its (D, C*p*p) view
  CHECK(stats("patch_embed.proj.weight")[0] <= a_pe);
  CHECK(stats("patch_embed.proj.weight")[2] == doctest::Approx(a_pe / std::sqrt(3.0)).epsilon(0.03));
  auto pb = stats("patch_embed.proj.bias");  // conv default U(-1/sqrt(16), 1/sqrt(16)), not zero
  CHECK(pb[0] <= 0.25);
  CHECK(pb[0] > 0.2);
  CHECK(stats("cls_token")[2] == doctest::Approx(0.02).epsilon(0.2));
  CHECK(stats("mask_token")[2] == doctest::Approx(0.02).epsilon(0.25));
  CHECK(stats("blocks.0.attn.qkv.bias")[0] == 0.0);
  CHECK(stats("decoder_pred.bias")[0] == 0.0);
  auto ln = stats("blocks.3.norm2.weight");
  CHECK(ln[1] == 1.0);
  CHECK(ln[2] == 1.0);
  CHECK(stats("norm.bias")[0] == 0.0);
}

TEST_CASE("wrong input shapes are rejected with a message") {
  mae::mae_vit_tiny_28x28_gray m;
  std::vector<float> img(3 * 32 * 32, 0.5f);
  CHECK_THROWS_WITH_AS(m.forward(mae::images(img.data(), 1, 3, 32, 32)),
                       doctest::Contains("images are 3x32x32 (CxHxW) but this model"), mae::Error);
  CHECK_THROWS_WITH_AS(m.forward(mae::images(img.data(), 1, 1, 28, 32)), doctest::Contains("takes 1x28x28"),
                       mae::Error);
  CHECK_THROWS_WITH_AS(m.forward(mae::images<float>(nullptr, 1, 1, 28, 28)), doctest::Contains("empty image batch"),
                       mae::Error);
  CHECK_THROWS_WITH_AS(m.features(mae::images(img.data(), 2, 1, 27, 27)), doctest::Contains("features"), mae::Error);
  CHECK_THROWS_WITH_AS(m.forward(mae::images(img.data(), 1, 1, 28, 28), 1.0), doctest::Contains("outside [0, 1)"),
                       mae::Error);
  CHECK_THROWS_WITH_AS(m.forward(mae::images(img.data(), 1, 1, 28, 28), 0.0), doctest::Contains("masks no patch"),
                       mae::Error);
  CHECK_THROWS_WITH_AS(m.backward(), doctest::Contains("needs a forward"), mae::Error);
}

TEST_CASE("results are bitwise identical with 1 and 2 threads") {
  if (mae::max_threads() < 1) return;
  using M = mae::mae_vit_tiny_28x28_gray;
  const Index N = 16;
  std::vector<float> img(N * 28 * 28);
  mae::Rng r(31);
  for (auto& v : img) v = static_cast<float>(r.normal());
  struct Result {
    float loss;
    std::vector<float> pred, grads, feats;
  };
  auto run = [&](int threads) {
    mae::set_num_threads(threads);
    M m(M::Options{true, 7});
    Result res;
    res.loss = m.forward(mae::images(img.data(), N, 1, 28, 28), 0.75);
    m.backward();
    res.pred.assign(m.pred().data(), m.pred().data() + m.pred().size());
    res.grads.assign(m.gradients().data(), m.gradients().data() + m.gradients().size());
    auto f = m.features(mae::images(img.data(), 4, 1, 28, 28));
    res.feats.assign(f.data(), f.data() + f.size());
    return res;
  };
  const int before = mae::max_threads();
  const Result one = run(1), two = run(2);
  mae::set_num_threads(before);
#ifdef _OPENMP
  MESSAGE("compared 1 thread against 2 threads");
#else
  MESSAGE("built without OpenMP: both runs are serial");
#endif
  CHECK(std::memcmp(&one.loss, &two.loss, sizeof(float)) == 0);
  CHECK(std::memcmp(one.pred.data(), two.pred.data(), sizeof(float) * one.pred.size()) == 0);
  CHECK(std::memcmp(one.grads.data(), two.grads.data(), sizeof(float) * one.grads.size()) == 0);
  CHECK(std::memcmp(one.feats.data(), two.feats.data(), sizeof(float) * one.feats.size()) == 0);
}

TEST_CASE("features: unmasked encoder output, cls first, one image independent of the others") {
  using M = mae::MaskedAutoencoder<TinyD>;
  M m;
  V img = random_vector(2 * 64, 41);
  auto f = m.features(mae::images(img.data(), 2, 1, 8, 8));
  REQUIRE(f.rows() == 2 * 17);
  REQUIRE(f.cols() == 8);
  // a LayerNorm output with weight 1 and bias 0 (the initialization): mean 0 per token
  for (Index t = 0; t < f.rows(); ++t) CHECK(std::abs(f.row(t).mean()) < 1e-12);
  const V second(f.data() + 17 * 8, f.data() + 34 * 8);
  const V img1(img.begin() + 64, img.end());
  auto f1 = m.features(mae::images(img1.data(), 1, 1, 8, 8));  // reuses the buffers of f
  double worst = 0;
  for (Index i = 0; i < 17 * 8; ++i) worst = std::max(worst, std::abs(second[i] - f1.data()[i]));
  CHECK(worst < 1e-12);
}

TEST_CASE("the default masking noise comes from the model's seed") {
  using M = mae::MaskedAutoencoder<TinyD>;
  V img = random_vector(64, 43);
  M a(M::Options{false, 1}), b(M::Options{false, 1});
  a.forward(mae::images(img.data(), 1, 1, 8, 8));
  b.forward(mae::images(img.data(), 1, 1, 8, 8));
  CHECK(a.mask() == b.mask());
  CHECK(a.mask().sum() == 12.0);  // L = 16, K = 4
  V first(a.mask().data(), a.mask().data() + 16);
  a.forward(mae::images(img.data(), 1, 1, 8, 8));  // the generator moves on
  CHECK(V(a.mask().data(), a.mask().data() + 16) != first);
}

TEST_CASE("forward refuses non-finite pixels, naming the image (issue 18)") {
  using M = mae::MaskedAutoencoder<mae::Config<8, 4, 1, 8, 1, 2, 8, 1, 2>>;
  M m;
  std::vector<float> img(3 * 64, 0.5f);
  img[64 + 9] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH_AS(
      m.forward(mae::images(img.data(), 3, 1, 8, 8)),
      doctest::Contains("forward: image 1 of the batch holds a non-finite pixel (inf) at (C, H, W) offset 9"),
      mae::Error);
  img[64 + 9] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_AS(m.features(mae::images(img.data(), 3, 1, 8, 8)), mae::Error);
  img[64 + 9] = 0.5f;
  CHECK(std::isfinite(m.forward(mae::images(img.data(), 3, 1, 8, 8))));
}
