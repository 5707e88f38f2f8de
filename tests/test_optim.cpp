// training/optim.hpp: AdamW's weight-decay groups, the layer-wise lr decay of fine-tuning,
// the warmup + cosine schedule, clip_grad_norm against torch (AdamW's steps against PyTorch:
// test_train.cpp, over a whole model; its saved state: test_checkpoint.cpp).
#include "test_util.hpp"

#include <cmath>
#include <limits>

using mae::Index;

TEST_CASE("lr schedule: linear warmup from 0, then half-cycle cosine to min_lr") {
  mae::LrSchedule s{1.0, 0.0, 2.0, 10.0};
  CHECK(s.at(0.0) == 0.0);
  CHECK(s.at(1.0) == doctest::Approx(0.5));
  CHECK(s.at(2.0) == doctest::Approx(1.0));
  CHECK(s.at(6.0) == doctest::Approx(0.5));  // halfway through the cosine
  CHECK(s.at(10.0) == doctest::Approx(0.0));
  mae::LrSchedule m{1.0, 0.1, 0.0, 4.0};
  CHECK(m.at(4.0) == doctest::Approx(0.1));
  CHECK(mae::LrSchedule::scaled(1.5e-4, 4096) == doctest::Approx(2.4e-3));
}

TEST_CASE("lr schedule: a schedule that means nothing is refused in words") {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  CHECK_NOTHROW(mae::LrSchedule({1e-3, 0.0, 0.5, 2.0}).check());
  CHECK_NOTHROW(mae::LrSchedule({1e-3, 1e-3, 0.0, 1.0}).check());  // a constant rate
  for (double lr : {nan, inf, 0.0, -1.0})
    CHECK_THROWS_WITH_AS(mae::LrSchedule({lr, 0.0, 0.5, 2.0}).check(), doctest::Contains("positive finite"),
                         mae::Error);
  for (double min_lr : {nan, -1e-6, 2e-3})
    CHECK_THROWS_WITH_AS(mae::LrSchedule({1e-3, min_lr, 0.5, 2.0}).check(), doctest::Contains("would rise"),
                         mae::Error);
  for (double warmup : {nan, inf, -0.5, 2.0, 3.0})
    CHECK_THROWS_WITH_AS(mae::LrSchedule({1e-3, 0.0, warmup, 2.0}).check(),
                         doctest::Contains("must be shorter than the run"), mae::Error);
}

TEST_CASE("AdamW decays matrices and tokens, not biases or LayerNorm weights") {
  mae::MaskedAutoencoder<mae::Config<8, 2, 1, 16, 2, 2, 16, 1, 2>> m;
  mae::AdamWOptions ao;
  ao.weight_decay = 0.5;
  mae::AdamW<float> opt(m.parameters(), ao);
  std::vector<float> before(m.parameters().data(), m.parameters().data() + m.parameters().size());
  m.zero_grad();
  opt.step(m.parameters(), m.gradients(), 0.1);  // zero gradient: only the decay moves weights
  for (const auto& t : m.parameters().tensors()) {
    const float* p = m.parameters().data() + t.offset;
    const float* b = before.data() + t.offset;
    const bool decayed = t.name.find(".bias") == std::string::npos && t.shape.size() > 1;
    INFO(t.name);
    CHECK(t.weight_decay() == decayed);
    for (Index i = 0; i < t.size; ++i) CHECK(p[i] == (decayed ? b[i] * (1.0f - 0.1f * 0.5f) : b[i]));
  }
  CHECK(m.parameters().find("cls_token").weight_decay());
  CHECK(m.parameters().find("mask_token").weight_decay());
  CHECK_FALSE(m.parameters().find("norm.weight").weight_decay());
}

TEST_CASE("fine-tuning parameter groups: layer-wise lr decay and no decay for 1-D, cls_token, pos_embed") {
  using M = mae::VisionTransformer<mae::Config<6, 3, 3, 8, 3, 2, 4, 1, 1, 2, double>>;  // 3 blocks: layers 0..4
  M model(typename M::Options{});
  const double d = 0.75;
  auto group = [&](const std::string& n) { return mae::layer_decay_group(model.parameters().find(n), M::kDepth, d); };
  CHECK(group("cls_token").lr_scale == doctest::Approx(std::pow(d, 4)));
  CHECK_FALSE(group("cls_token").weight_decay);
  CHECK_FALSE(group("pos_embed").weight_decay);
  CHECK(group("patch_embed.proj.weight").weight_decay);
  CHECK(group("patch_embed.proj.weight").lr_scale == doctest::Approx(std::pow(d, 4)));
  CHECK(group("blocks.0.attn.qkv.weight").lr_scale == doctest::Approx(std::pow(d, 3)));
  CHECK(group("blocks.2.mlp.fc1.weight").lr_scale == doctest::Approx(d));
  CHECK_FALSE(group("blocks.2.mlp.fc1.bias").weight_decay);
  CHECK(group("head.weight").lr_scale == 1.0);
  CHECK(group("head.weight").weight_decay);
  CHECK_FALSE(group("fc_norm.weight").weight_decay);
}

TEST_CASE("clip_grad_norm equals torch.nn.utils.clip_grad_norm_") {
  const auto& f = mae_test::fixture_file("augment_timm");
  for (const std::string& name : mae_test::words(f.metadata().at("clip_cases"))) {
    INFO(name);
    std::vector<float> g = f.read<float>("clip." + name + ".grad");
    const std::vector<double> nm = f.read<double>("clip." + name + ".norm");
    const double norm = mae::clip_grad_norm(g.data(), static_cast<Index>(g.size()), nm[1]);
    CHECK(std::abs(norm - nm[0]) <= 1e-6 * nm[0]);  // torch sums in float: 1e-7 relative
    const std::vector<float> want = f.read<float>("clip." + name + ".clipped");
    for (std::size_t i = 0; i < g.size(); ++i) CHECK(std::abs(g[i] - want[i]) <= 1e-6 * std::abs(want[i]));
  }
  std::vector<float> bad{1.0f, std::numeric_limits<float>::infinity()};
  CHECK_THROWS_WITH_AS(mae::clip_grad_norm(bad.data(), 2, 1.0), doctest::Contains("clip_grad"), mae::Error);
}
