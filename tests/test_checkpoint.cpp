// checkpoint.hpp (the metadata every mae file carries, a run's state) and the optimizer's own
// state (optim.hpp): written, read back the same, and refused by name when wrong.
#include "test_util.hpp"

#include <mae/io/checkpoint.hpp>
#include <mae/training/optim.hpp>

#include <cmath>
#include <string>
#include <vector>

using mae::Index;
namespace fs = std::filesystem;

namespace {
// A store of two tensors, a linear layer's (3, 2) weight and (3) bias.
void build_linear(mae::TensorStore<float>& s) {
  float *w = nullptr, *b = nullptr;
  s.build([&](auto&& f) {
    f("a.weight", {3, 2}, w);
    f("a.bias", {3}, b);
  });
}
}  // namespace

TEST_CASE("normalization: written and read back; corrupt or of another channel count refused, naming the file") {
  mae::Metadata meta;
  CHECK_FALSE(mae::read_normalization(meta, "x.safetensors").has_value());  // none saved
  mae::write_normalization(meta, {0.25, 0.5, 0.125}, {1.5, 2.0, 0.75});
  const auto n = mae::read_normalization(meta, "x.safetensors", 3);
  REQUIRE(n.has_value());
  CHECK(n->mean == std::vector<double>{0.25, 0.5, 0.125});
  CHECK(n->stddev == std::vector<double>{1.5, 2.0, 0.75});
  CHECK_THROWS_WITH_AS(mae::read_normalization(meta, "x.safetensors", 1),
                       doctest::Contains("x.safetensors: its normalization has 3 channels, the model 1"), mae::Error);
  meta[mae::keys::normalize_std] = "[1.5, oops";
  CHECK_THROWS_WITH_AS(mae::read_normalization(meta, "y.safetensors"),
                       doctest::Contains("y.safetensors: corrupt normalization"), mae::Error);
}

TEST_CASE("classifier description: VisionTransformer's name read back; missing or unreadable refused by name") {
  mae::Metadata meta;
  meta[mae::keys::classifier] = mae::classifier_description("img28_x", 3, false);
  mae::write_classes(meta, {"cat", "dog", "eel"});
  const mae::ClassifierInfo c = mae::read_classifier_info(meta, "c.safetensors");
  CHECK(c.config == "img28_x");
  CHECK(c.classes == 3);
  CHECK_FALSE(c.global_pool);
  CHECK(c.class_names == std::vector<std::string>{"cat", "dog", "eel"});
  // names that do not fit the head: numbered instead
  mae::write_classes(meta, {"cat"});
  CHECK(mae::read_classifier_info(meta, "c.safetensors").class_names == std::vector<std::string>{"0", "1", "2"});
  meta[mae::keys::classifier] = mae::classifier_description("img28_x", 10, true);
  CHECK(mae::read_classifier_info(meta, "c.safetensors").global_pool);
  meta[mae::keys::classifier] = "img28_x";
  CHECK_THROWS_WITH_AS(mae::read_classifier_info(meta, "c.safetensors"),
                       doctest::Contains("c.safetensors: unreadable classifier description"), mae::Error);
  meta.erase(mae::keys::classifier);
  CHECK_THROWS_WITH_AS(mae::read_classifier_info(meta, "c.safetensors"),
                       doctest::Contains("not a classifier checkpoint"), mae::Error);
}

TEST_CASE("RunState and AdamW's state: saved, read back exactly; a missing key or tensor refused, nothing changed") {
  mae::TensorStore<float> params;
  build_linear(params);
  std::vector<float> grads(static_cast<std::size_t>(params.size()));
  for (Index i = 0; i < params.size(); ++i) params.data()[i] = 0.1f * static_cast<float>(i) - 0.3f;
  for (std::size_t i = 0; i < grads.size(); ++i) grads[i] = std::sin(static_cast<float>(i));
  mae::TensorStore<float> g;
  build_linear(g);
  std::copy(grads.begin(), grads.end(), g.data());
  mae::AdamW<float> opt(params, mae::AdamWOptions{});
  opt.step(params, g, 1e-2);
  opt.step(params, g, 1e-2);

  std::vector<mae::safetensors::TensorOut> t;
  mae::Metadata meta;
  opt.save_state(params, t, meta);
  mae::RunState run;
  run.step = 17, run.pending_micro_batches = 2, run.lr = 1.0 / 3.0, run.rng = "12345 678";
  run.write(meta);
  const fs::path p = mae_test::scratch_dir("checkpoint_state") / "ckpt.safetensors";
  mae::safetensors::save(p.string(), t, meta);

  const mae::safetensors::File f(p.string());
  const mae::RunState r = mae::RunState::read(f, /*with_lr=*/true, "training");
  CHECK(r.step == 17);
  CHECK(r.pending_micro_batches == 2);
  REQUIRE(r.lr.has_value());
  CHECK(*r.lr == 1.0 / 3.0);  // exact: a hex float
  CHECK(r.rng == "12345 678");
  mae::AdamW<float> fresh(params, mae::AdamWOptions{});
  fresh.load_state(mae::AdamW<float>::read_state(f, params));
  CHECK(fresh.steps() == 2);
  CHECK(fresh.exp_avg() == opt.exp_avg());
  CHECK(fresh.exp_avg_sq() == opt.exp_avg_sq());
  // the two go on identically
  std::vector<float> p1(params.data(), params.data() + params.size());
  mae::TensorStore<float> params2;
  build_linear(params2);
  std::copy(p1.begin(), p1.end(), params2.data());
  opt.step(params, g, 1e-2);
  fresh.step(params2, g, 1e-2);
  CHECK(std::equal(params.data(), params.data() + params.size(), params2.data()));
  CHECK(mae::AdamW<float>::state_names(params) ==
        std::vector<std::string>{"optimizer.exp_avg.a.weight", "optimizer.exp_avg_sq.a.weight",
                                 "optimizer.exp_avg.a.bias", "optimizer.exp_avg_sq.a.bias"});

  // a weights-only file: not a training checkpoint; no optimizer state
  const fs::path w = p.parent_path() / "weights.safetensors";
  mae::safetensors::save(w.string(), {mae::safetensors::TensorOut::of<float>("a.bias", {3}, params.data())}, {});
  const mae::safetensors::File fw(w.string());
  CHECK_THROWS_WITH_AS(mae::RunState::read(fw, true, "training"),
                       doctest::Contains("not a training checkpoint (no 'mae.step'"), mae::Error);
  CHECK_THROWS_WITH_AS(mae::AdamW<float>::read_state(fw, params), doctest::Contains("no optimizer state"), mae::Error);
  // a checkpoint of another layout: the missing moment named
  mae::TensorStore<float> other;
  float* bw = nullptr;
  other.build([&](auto&& f) { f("b.weight", {2}, bw); });
  CHECK_THROWS_WITH_AS(mae::AdamW<float>::read_state(f, other), doctest::Contains("optimizer.exp_avg.b.weight"),
                       mae::Error);
  // a fine-tuning reads no lr
  const mae::RunState ft = mae::RunState::read(f, /*with_lr=*/false, "fine-tuning");
  CHECK_FALSE(ft.lr.has_value());
  CHECK(ft.step == 17);
}

TEST_CASE("a resume must continue the same trajectory: a changed option named, a missing one refused") {
  mae::Metadata meta;
  mae::write_trajectory(meta, mae::keys::train, {{"batch", 64}, {"epochs", 10}});
  const fs::path p = mae_test::scratch_dir("checkpoint_trajectory") / "t.safetensors";
  const float x = 1;
  mae::safetensors::save(p.string(), {mae::safetensors::TensorOut::of<float>("x", {1}, &x)}, meta);
  const mae::safetensors::File f(p.string());
  CHECK_NOTHROW(mae::require_same_trajectory(f, mae::keys::train, {{"batch", 64}, {"epochs", 10}}, "trained"));
  CHECK_THROWS_WITH_AS(mae::require_same_trajectory(f, mae::keys::train, {{"batch", 32}}, "trained"),
                       doctest::Contains("checkpoint was trained with batch = 64, this run has 32"), mae::Error);
  CHECK_THROWS_WITH_AS(mae::require_same_trajectory(f, mae::keys::train, {{"seed", 1}}, "trained"),
                       doctest::Contains("seed = ?"), mae::Error);
  CHECK_THROWS_WITH_AS(mae::require_same_trajectory(f, mae::keys::finetune, {{"batch", 64}}, "fine-tuned"),
                       doctest::Contains("no 'mae.finetune'"), mae::Error);
}
