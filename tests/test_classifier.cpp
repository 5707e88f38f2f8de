// models/classifier.hpp and training/linear_probe.hpp: the ViT classifier (gradient checks of
// every parameter in both head modes, drop path, soft targets), loading an MAE encoder (of
// another image size too), and the linear probe (BatchNorm statistics, gradient, LARS).
#include "test_util.hpp"

#include <mae/training/finetune.hpp>

#include <cstring>

using mae::Index;
using mae_test::grad_check;
using mae_test::GradTarget;
using mae_test::random_vector;
using V = std::vector<double>;

namespace {
using TinyD = mae::Config<8, 2, 1, 8, 2, 2, 8, 1, 2, 4, double>;     // L = 16, D = 8, 2 blocks
using TinyRgbD = mae::Config<6, 3, 3, 8, 3, 2, 4, 1, 1, 2, double>;  // L = 4, 3 blocks, RGB

template <class Cfg>
void classifier_grad_check(bool global_pool, double drop_path, double smoothing) {
  using M = mae::VisionTransformer<Cfg>;
  typename M::Options o;
  o.num_classes = 3, o.global_pool = global_pool, o.drop_path = drop_path, o.label_smoothing = smoothing, o.seed = 5;
  M model(o);
  const Index N = 4, HW = Cfg::img_size;
  V init = random_vector(model.parameters().size(), 31, 0.3);
  std::copy(init.begin(), init.end(), model.parameters().data());
  V img = random_vector(N * Cfg::in_chans * HW * HW, 32);
  const std::vector<int> labels{0, 2, 1, 2};
  const auto batch = mae::images(img.data(), N, Cfg::in_chans, HW, HW);
  // the same drop-path draws at every forward: drop path is a fixed mask per sample
  auto fwd = [&] {
    model.rng() = mae::Rng(77);
    return V{model.forward(batch, labels.data(), /*training=*/true)};
  };
  auto bwd = [&](const V& G) { model.backward(G[0]); };
  std::vector<GradTarget> targets;
  for (const auto& t : model.parameters().tensors())
    targets.push_back({t.name, model.parameters().data() + t.offset, model.gradients().data() + t.offset, t.size});
  auto rep = grad_check(fwd, bwd, targets);
  INFO(rep.str());
  CHECK(rep.ok);
  CHECK(rep.checked == model.parameters().size());
}
}  // namespace

TEST_CASE("classifier: gradient check of every parameter (global pool + fc_norm, drop path, smoothing)") {
  classifier_grad_check<TinyD>(true, 0.4, 0.1);
}
TEST_CASE("classifier: gradient check of every parameter (cls token + norm, no drop path, RGB)") {
  classifier_grad_check<TinyRgbD>(false, 0.0, 0.0);
}

TEST_CASE("classifier backward reports its gradients as they become final, from the store's end") {
  using M = mae::VisionTransformer<TinyRgbD>;
  typename M::Options o;
  o.num_classes = 3, o.drop_path = 0.2, o.seed = 5;
  M model(o);
  V img = random_vector(4 * 3 * 6 * 6, 33);
  const std::vector<int> labels{0, 2, 1, 2};
  model.forward(mae::images(img.data(), 4, 3, 6, 6), labels.data(), /*training=*/true);
  std::vector<std::string> firsts{"head.weight", "fc_norm.weight"};
  for (int b = TinyRgbD::depth - 1; b >= 0; --b) firsts.push_back("blocks." + std::to_string(b) + ".norm1.weight");
  mae_test::check_gradients_ready(  // then pos_embed, the embedding and cls_token: all
      model, [&](const mae::GradientsReady& ready) { model.zero_grad(), model.backward(1.0, ready); }, firsts);
}

TEST_CASE("drop path: per-sample 0 or 1/(1-rate) in training, off in evaluation, rate linear in depth") {
  using M = mae::VisionTransformer<TinyRgbD>;
  typename M::Options o;
  o.num_classes = 2, o.drop_path = 0.5, o.seed = 1;
  M model(o);
  const Index N = 64, HW = TinyRgbD::img_size;
  V img = random_vector(N * 3 * HW * HW, 3);
  const auto batch = mae::images(img.data(), N, 3, HW, HW);
  model.forward(batch, nullptr, false);
  const V eval(model.logits().data(), model.logits().data() + N * 2);
  model.forward(batch, nullptr, false);
  CHECK(std::equal(eval.begin(), eval.end(), model.logits().data()));  // evaluation is deterministic
  // training: block b's branches are kept (scaled by 1/(1 - rate)) or dropped per sample,
  // rate = 0.5 * b / (depth - 1); block 0 (rate 0) is untouched
  model.forward(batch, nullptr, true);
  const auto b1 = model.block_output(1);
  const V train_b1(b1.data(), b1.data() + b1.size());
  const V train_logits(model.logits().data(), model.logits().data() + N * 2);
  for (Index b = 0; b < 3; ++b) {
    const double rate = 0.5 * b / 2.0;
    Index dropped = 0;
    for (int branch = 0; branch < 2; ++branch) {
      const double* keep = model.drop_path_scales(b, branch);
      if (rate == 0) {
        CHECK(keep == nullptr);
        continue;
      }
      for (Index n = 0; n < N; ++n) {
        CHECK((keep[n] == 0.0 || keep[n] == doctest::Approx(1.0 / (1.0 - rate)).epsilon(1e-15)));
        dropped += keep[n] == 0.0;
      }
    }
    // 128 draws: within 4 standard deviations of the expected count
    const double expect = 128 * rate, sd = std::sqrt(128 * rate * (1 - rate));
    if (rate > 0) CHECK(std::abs(static_cast<double>(dropped) - expect) < 4 * sd);
  }
  model.forward(batch, nullptr, false);
  CHECK(model.drop_path_scales(2, 0) == nullptr);
  const auto e1 = model.block_output(1);
  CHECK(std::equal(train_b1.begin(), train_b1.end(), e1.data()));
  CHECK_FALSE(std::equal(eval.begin(), eval.end(), train_logits.begin()));
  // drop_path 0: training is evaluation
  o.drop_path = 0;
  M plain(o);
  plain.forward(batch, nullptr, true);
  const V t0(plain.logits().data(), plain.logits().data() + N * 2);
  plain.forward(batch, nullptr, false);
  CHECK(std::equal(t0.begin(), t0.end(), plain.logits().data()));
}

TEST_CASE("classifier: the MAE encoder loads by its official names and gives the MAE's features") {
  using Cfg = mae::Config<8, 2, 1, 8, 2, 2, 8, 1, 2, 4, float>;
  mae::MaskedAutoencoder<Cfg> mae_model(typename mae::MaskedAutoencoder<Cfg>::Options{false, 9});
  const auto dir = mae_test::scratch_dir("classifier_load");
  const std::string path = (dir / "mae.safetensors").string();
  mae_model.save(path);
  using M = mae::VisionTransformer<Cfg>;
  typename M::Options o;
  o.num_classes = 10, o.global_pool = false;
  M clf(o);
  clf.load_encoder(path);
  const Index N = 3;
  std::vector<float> img(N * 64);
  mae::Rng r(4);
  for (auto& v : img) v = static_cast<float>(r.normal());
  const auto batch = mae::images(img.data(), N, 1, 8, 8);
  const auto ref = mae_model.features(batch);  // (N*(1+L), D), normed
  clf.forward(batch, nullptr, false);
  const auto f = clf.features();  // (N, D): norm(x)[:, 0]
  for (Index n = 0; n < N; ++n)
    for (Index d = 0; d < 8; ++d) CHECK(f(n, d) == doctest::Approx(ref(n * 17, d)).epsilon(1e-5));
  // pos_embed is the MAE's fixed table, now a parameter
  CHECK(std::memcmp(clf.parameters().ptr("pos_embed"), mae_model.pos_embed(), 17 * 8 * sizeof(float)) == 0);
  // global pool: fc_norm stays fresh (ones, zeros), the checkpoint's norm is not used
  typename M::Options og;
  og.num_classes = 10;
  M gp(og);
  gp.load_encoder(path);
  CHECK(gp.parameters().ptr("fc_norm.weight")[0] == 1.0f);
  CHECK(gp.parameters().ptr("blocks.1.mlp.fc2.bias")[3] == mae_model.parameters().ptr("blocks.1.mlp.fc2.bias")[3]);

  // another configuration is refused, and nothing changes
  using Other = mae::Config<8, 2, 1, 8, 3, 2, 8, 1, 2, 4, float>;
  mae::VisionTransformer<Other> other(typename mae::VisionTransformer<Other>::Options{});
  const std::vector<float> before(other.parameters().data(), other.parameters().data() + other.parameters().size());
  CHECK_THROWS_WITH_AS(other.load_encoder(path), doctest::Contains("another configuration"), mae::Error);
  CHECK(std::equal(before.begin(), before.end(), other.parameters().data()));

  // own checkpoints: round trip, and a classifier with another number of classes is refused
  const std::string cpath = (dir / "clf.safetensors").string();
  clf.save(cpath);
  M clf2(o);
  clf2.load(cpath);
  CHECK(
      std::equal(clf.parameters().data(), clf.parameters().data() + clf.parameters().size(), clf2.parameters().data()));
  typename M::Options o5 = o;
  o5.num_classes = 5;
  M clf5(o5);
  CHECK_THROWS_WITH_AS(clf5.load(cpath), doctest::Contains("another classifier"), mae::Error);
  CHECK_THROWS_WITH_AS(clf.load(path), doctest::Contains("missing"), mae::Error);  // an MAE file is not a classifier
}

TEST_CASE("linear probe: BatchNorm statistics, gradient of the head, and it learns a separable problem") {
  const Index B = 6, F = 5, K = 3;
  std::vector<float> x(B * F);
  mae::Rng r(8);
  for (auto& v : x) v = static_cast<float>(3.0 + 2.0 * r.normal());
  const std::vector<int> y{0, 1, 2, 2, 1, 0};
  mae::LinearProbe<double> probe(F, K, 1);
  V xd(x.begin(), x.end());
  probe.zero_grad();
  probe.forward_backward(xd.data(), y.data(), B);
  for (Index f = 0; f < F; ++f) {  // running stats after one batch: 0.1 * mean, 0.9 + 0.1 * unbiased var
    double m = 0, v = 0;
    for (Index n = 0; n < B; ++n) m += xd[n * F + f] / B;
    for (Index n = 0; n < B; ++n) v += (xd[n * F + f] - m) * (xd[n * F + f] - m) / (B - 1);
    CHECK(probe.running_mean()[f] == doctest::Approx(0.1 * m).epsilon(1e-12));
    CHECK(probe.running_var()[f] == doctest::Approx(0.9 + 0.1 * v).epsilon(1e-12));
  }
  auto& P = probe.parameters();
  auto& G = probe.gradients();
  auto fwd = [&] {
    mae::TensorStore<double>& g = probe.gradients();
    std::vector<double> keep(g.data(), g.data() + g.size());
    const double loss = probe.forward_backward(xd.data(), y.data(), B, /*update_stats=*/false);
    std::copy(keep.begin(), keep.end(), g.data());  // forward only: leave the gradient alone
    return V{loss};
  };
  auto bwd = [&](const V& Gd) { probe.forward_backward(xd.data(), y.data(), B, false, Gd[0]); };
  auto rep = grad_check(fwd, bwd, {{"head.1", P.data(), G.data(), P.size()}});
  INFO(rep.str());
  CHECK(rep.ok);

  // three Gaussian classes in 8-D, trained with LARS: near-perfect test accuracy
  const Index n_train = 600, n_test = 300, F2 = 8;
  auto make = [&](Index n, std::uint64_t seed, std::vector<float>& fx, std::vector<int>& fy) {
    mae::Rng g(seed);
    fx.resize(n * F2), fy.resize(n);
    for (Index i = 0; i < n; ++i) {
      fy[i] = static_cast<int>(i % 3);
      for (Index f = 0; f < F2; ++f)
        fx[i * F2 + f] = static_cast<float>(10.0 + 0.5 * g.normal() + (f == fy[i] ? 2.0 : 0.0));
    }
  };
  std::vector<float> tx, ex;
  std::vector<int> ty, ey;
  make(n_train, 1, tx, ty), make(n_test, 2, ex, ey);
  mae::LinearProbe<float> p2(F2, 3, 0);
  mae::Lars<float> lars(p2.parameters(), mae::LarsOptions{});
  const auto before = p2.evaluate(ex.data(), ey.data(), n_test);
  for (int epoch = 0; epoch < 30; ++epoch)
    for (Index s = 0; s + 100 <= n_train; s += 100) {
      p2.zero_grad();
      p2.forward_backward(tx.data() + s * F2, ty.data() + s, 100);
      lars.step(p2.parameters(), p2.gradients(), 2.0);
    }
  const auto after = p2.evaluate(ex.data(), ey.data(), n_test);
  INFO("accuracy before " << before.first << ", after " << after.first);
  CHECK(before.first < 0.6);
  CHECK(after.first > 0.95);
}

// --- parity with PyTorch (tests/make_fixtures.py: models_vit.py, util/lr_decay.py, util/lars.py)
namespace {
std::string fixture_path(const std::string& name) { return std::string(MAE_FIXTURE_DIR) + "/" + name + ".safetensors"; }

std::vector<int> read_labels(const mae::safetensors::File& f, const std::string& name) {
  const std::vector<double> v = f.read<double>(name);
  return std::vector<int>(v.begin(), v.end());
}

void expect_close(const std::string& what, const float* ours, const std::vector<float>& ref, double atol, double rtol,
                  std::string& table) {
  const auto r = mae_test::compare(ours, ref.data(), static_cast<Index>(ref.size()), atol, rtol);
  table += "\n  " + what + ": " + r.str();
  INFO(what << ": " << r.str());
  CHECK(r.bad == 0);
}

template <class Cfg>
void check_classifier_fixture(const std::string& name) {
  using M = mae::VisionTransformer<Cfg>;
  const mae::safetensors::File f(fixture_path(name));
  const auto& meta = f.metadata();
  typename M::Options o;
  o.num_classes = std::stoll(meta.at("classes"));
  o.global_pool = meta.at("global_pool") == "1";
  o.label_smoothing = std::stod(meta.at("smoothing"));
  o.drop_path = 0.3;  // evaluation mode must not use it; training below uses 0 as the fixture
  M model(o);
  for (const auto& t : model.parameters().tensors()) f.read("init." + t.name, t.shape, model.parameters().ptr(t.name));
  std::string table = name + ":";
  mae::Shape s;
  const std::vector<float> imgs = f.read<float>("input.imgs", &s);
  const std::vector<int> labels = read_labels(f, "input.labels");
  const auto batch = mae::images(imgs.data(), s[0], s[1], s[2], s[3]);
  // evaluation mode (no drop path) gives the logits; the loss needs labels
  model.forward(batch, nullptr, /*training=*/false);
  expect_close("logits", model.logits().data(), f.read<float>("output.logits"), 1e-5, 1e-4, table);
  typename M::Options o0 = o;
  o0.drop_path = 0;
  M m0(o0);
  std::copy(model.parameters().data(), model.parameters().data() + model.parameters().size(), m0.parameters().data());
  const float loss = m0.forward(batch, labels.data(), /*training=*/true);
  expect_close("loss", &loss, f.read<float>("output.loss"), 1e-5, 1e-4, table);
  m0.zero_grad();
  m0.backward();
  for (const auto& t : m0.gradients().tensors())
    expect_close("grad." + t.name, m0.gradients().ptr(t.name), f.read<float>("grad." + t.name), 1e-5, 1e-4, table);
  // fine-tuning steps: AdamW (0.9, 0.999) over the layer-decay groups, lr = schedule * scale
  const double layer_decay = std::stod(meta.at("layer_decay"));
  mae::AdamWOptions ao;
  ao.beta2 = 0.999, ao.weight_decay = std::stod(meta.at("weight_decay"));
  mae::AdamW<float> opt(m0.parameters(), ao,
                        [&](const mae::TensorInfo& t) { return mae::layer_decay_group(t, M::kDepth, layer_decay); });
  const mae::LrSchedule sched{std::stod(meta.at("lr")), std::stod(meta.at("min_lr")),
                              std::stod(meta.at("warmup_epochs")), std::stod(meta.at("epochs"))};
  const Index steps = std::stoll(meta.at("steps"));
  const std::vector<double> ref_losses = f.read<double>("output.step_losses");
  for (Index it = 0; it < steps; ++it) {
    const std::vector<float> x = f.read<float>("step.imgs." + std::to_string(it));
    const std::vector<int> y = read_labels(f, "step.labels." + std::to_string(it));
    m0.zero_grad();
    const float l = m0.forward(mae::images(x.data(), s[0], s[1], s[2], s[3]), y.data(), true);
    CHECK(l == doctest::Approx(ref_losses[it]).epsilon(1e-4));
    m0.backward();
    opt.step(m0.parameters(), m0.gradients(), sched.at(static_cast<double>(it) / static_cast<double>(steps)));
  }
  for (const auto& t : m0.parameters().tensors()) {
    std::vector<float> ref = f.read<float>("final." + t.name);
    std::vector<float> ours(m0.parameters().ptr(t.name), m0.parameters().ptr(t.name) + t.size);
    if (t.name.size() > 13 && t.name.compare(t.name.size() - 13, 13, "attn.qkv.bias") == 0) {
      // the key bias has an exactly-zero true gradient (see the AdamW parity test)
      const Index D = t.size / 3;
      ours.erase(ours.begin() + D, ours.begin() + 2 * D);
      ref.erase(ref.begin() + D, ref.begin() + 2 * D);
    }
    expect_close("final." + t.name, ours.data(), ref, 1e-5, 1e-4, table);
  }
  MESSAGE(table);
}
}  // namespace

TEST_CASE("parity: classifier (global pool + fc_norm, label smoothing) and layer-decay AdamW match PyTorch") {
  check_classifier_fixture<mae::Config<8, 2, 1, 16, 3, 2, 16, 1, 2>>("classifier_gray_gap");
}
TEST_CASE("parity: classifier (cls token + norm, RGB) and layer-decay AdamW match PyTorch") {
  check_classifier_fixture<mae::Config<12, 4, 3, 24, 2, 3, 24, 1, 3>>("classifier_rgb_cls");
}

TEST_CASE("parity: linear probe head (BatchNorm without affine + Linear) with LARS matches PyTorch") {
  const mae::safetensors::File f(fixture_path("linear_probe_lars"));
  mae::Shape ws;
  const std::vector<float> w0 = f.read<float>("init.head.1.weight", &ws);
  const Index K = ws[0], F = ws[1];
  mae::LinearProbe<float> probe(F, K, 0);
  f.read("init.head.1.weight", ws, probe.parameters().ptr("head.1.weight"));
  f.read("init.head.1.bias", {K}, probe.parameters().ptr("head.1.bias"));
  mae::Lars<float> lars(probe.parameters(), mae::LarsOptions{std::stod(f.metadata().at("weight_decay")), 0.9, 0.001});
  const double lr = std::stod(f.metadata().at("lr"));
  const Index steps = std::stoll(f.metadata().at("steps"));
  const std::vector<double> ref_losses = f.read<double>("output.step_losses");
  for (Index it = 0; it < steps; ++it) {
    mae::Shape xs;
    const std::vector<float> x = f.read<float>("step.x." + std::to_string(it), &xs);
    const std::vector<int> y = read_labels(f, "step.labels." + std::to_string(it));
    probe.zero_grad();
    CHECK(probe.forward_backward(x.data(), y.data(), xs[0]) == doctest::Approx(ref_losses[it]).epsilon(1e-5));
    lars.step(probe.parameters(), probe.gradients(), lr);
  }
  std::string table = "linear_probe_lars:";
  expect_close("running_mean", probe.running_mean().data(), f.read<float>("final.head.0.running_mean"), 1e-6, 1e-5,
               table);
  expect_close("running_var", probe.running_var().data(), f.read<float>("final.head.0.running_var"), 1e-6, 1e-5, table);
  expect_close("head.1.weight", probe.parameters().ptr("head.1.weight"), f.read<float>("final.head.1.weight"), 1e-6,
               1e-4, table);
  expect_close("head.1.bias", probe.parameters().ptr("head.1.bias"), f.read<float>("final.head.1.bias"), 1e-6, 1e-4,
               table);
  mae::Shape es;
  const std::vector<float> xe = f.read<float>("eval.x", &es);
  std::vector<float> logits(static_cast<std::size_t>(es[0] * K));
  probe.predict(xe.data(), es[0], logits.data());
  expect_close("eval logits", logits.data(), f.read<float>("eval.logits"), 1e-5, 1e-4, table);
  MESSAGE(table);
}

TEST_CASE("soft targets of a one-hot smoothed label give the label-smoothing loss and gradients") {
  using Cfg = mae::Config<8, 2, 1, 8, 2, 2, 8, 1, 2, 4, double>;
  using M = mae::VisionTransformer<Cfg>;
  M::Options o;
  o.num_classes = 5, o.label_smoothing = 0.1, o.seed = 3, o.drop_path = 0;
  M a(o), b(o);
  const Index N = 4, HW = Cfg::img_size;
  const std::vector<double> img = mae_test::random_vector(N * HW * HW, 5);
  const std::vector<int> labels{4, 0, 2, 2};
  std::vector<float> targets(static_cast<std::size_t>(N * 5));
  mae::mix_targets(targets.data(), labels.data(), N, 5, 1.0, 0.1);  // lam 1: y_i smoothed
  a.zero_grad(), b.zero_grad();
  const double la = a.forward(mae::images(img.data(), N, 1, HW, HW), labels.data());
  const double lb = b.forward_soft(mae::images(img.data(), N, 1, HW, HW), targets.data());
  CHECK(lb == doctest::Approx(la).epsilon(1e-6));  // targets in float: 1e-7 relative
  a.backward(), b.backward();
  CHECK(mae_test::rel_dist(b.gradients().data(), a.gradients().data(), a.gradients().size()) < 1e-6);
  targets[3] = std::nanf("");
  CHECK_THROWS_WITH_AS(b.forward_soft(mae::images(img.data(), N, 1, HW, HW), targets.data()),
                       doctest::Contains("not finite"), mae::Error);
}

TEST_CASE("an encoder of another image size: into a classifier (pos_embed interpolated) and a fresh MAE") {
  using Small = mae::Config<8, 2, 1, 8, 2, 2, 8, 1, 2, 4, float>;   // grid 4
  using Large = mae::Config<12, 2, 1, 8, 2, 2, 8, 1, 2, 4, float>;  // grid 6, same patch and widths
  mae::MaskedAutoencoder<Small> small(typename mae::MaskedAutoencoder<Small>::Options{false, 9});
  const auto dir = mae_test::scratch_dir("other_resolution");
  const std::string path = (dir / "small.safetensors").string();
  small.save(path);
  const auto& sp = small.parameters();

  // the classifier: blocks as saved, pos_embed the official interpolation of the saved table
  using Clf = mae::VisionTransformer<Large>;
  typename Clf::Options o;
  o.num_classes = 3, o.global_pool = false;
  Clf clf(o);
  CHECK(clf.load_encoder(path) == 4);
  std::vector<float> expected(37 * 8);
  mae::interpolate_pos_embed(expected.data(), 6, small.pos_embed(), 4, 8);
  CHECK(std::memcmp(clf.parameters().ptr("pos_embed"), expected.data(), expected.size() * sizeof(float)) == 0);
  for (const char* t : {"blocks.1.attn.qkv.weight", "patch_embed.proj.weight", "cls_token", "norm.weight"})
    CHECK(std::memcmp(clf.parameters().ptr(t), sp.ptr(t), sizeof(float) * 8) == 0);
  std::vector<float> img(2 * 144, 0.3f);
  clf.forward(mae::images(img.data(), 2, 1, 12, 12), nullptr, false);
  CHECK(std::isfinite(clf.logits()(1, 2)));

  // a fresh MAE: the encoder's tensors loaded, its own fixed tables and fresh decoder kept
  using Mae = mae::MaskedAutoencoder<Large>;
  Mae large(typename Mae::Options{false, 3});
  const Mae untouched(typename Mae::Options{false, 3});
  large.load_encoder(path);
  const auto& lp = large.parameters();
  for (const auto& t : lp.tensors()) {
    const bool encoder = t.name.rfind("decoder", 0) != 0 && t.name != "mask_token";
    const float* want = encoder ? sp.ptr(t.name) : untouched.parameters().ptr(t.name);
    INFO(t.name);
    CHECK(std::memcmp(lp.data() + t.offset, want, sizeof(float) * static_cast<std::size_t>(t.size)) == 0);
  }
  CHECK(std::memcmp(large.pos_embed(), untouched.pos_embed(), 37 * 8 * sizeof(float)) == 0);

  // another patch size (or width) cannot be resized: refused, and nothing changes
  using OtherPatch = mae::Config<12, 3, 1, 8, 2, 2, 8, 1, 2, 4, float>;
  mae::VisionTransformer<OtherPatch> other(typename mae::VisionTransformer<OtherPatch>::Options{});
  const std::vector<float> before(other.parameters().data(), other.parameters().data() + other.parameters().size());
  CHECK_THROWS_WITH_AS(other.load_encoder(path), doctest::Contains("another configuration"), mae::Error);
  CHECK(std::equal(before.begin(), before.end(), other.parameters().data()));
  mae::MaskedAutoencoder<OtherPatch> other_mae(typename mae::MaskedAutoencoder<OtherPatch>::Options{});
  CHECK_THROWS_WITH_AS(other_mae.load_encoder(path), doctest::Contains("another configuration"), mae::Error);
  // but a whole MAE checkpoint still needs its own image size
  CHECK_THROWS_WITH_AS(large.load(path), doctest::Contains("another configuration"), mae::Error);
}
