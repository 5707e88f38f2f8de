// Models handed to and from timm: files written by timm's own VisionTransformer
// (tests/make_timm_fixtures.py) load here and give timm's features, tokens, hidden states,
// attention probabilities and logits; our timm export holds timm's names and values exactly.
#include "test_util.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

// timm's VisionTransformer(img_size=16, patch_size=4, in_chans=3, embed_dim=12, depth=2,
// num_heads=3, mlp_ratio=4), the fixture's; the decoder sizes are not timm's concern.
using Cfg = mae::Config<16, 4, 3, 12, 2, 3, 8, 1, 2, 4, float>;
using Vit = mae::VisionTransformer<Cfg>;
constexpr mae::Index N = 3, T = 17, D = 12, H = 3;

std::string timm_dir(const std::string& name) { return std::string(MAE_FIXTURE_DIR) + "/timm/" + name; }
const mae::safetensors::File& outputs() { return mae_test::fixture_file("timm/outputs"); }

// Compares values of our model to timm's output `name` to 1e-5 relative (float against float,
// summed in another order).
template <class Map>
void check_close(const Map& ours, const std::string& name) {
  mae::Shape shape;
  const std::vector<float> want = outputs().read<float>(name, &shape);
  REQUIRE(static_cast<std::size_t>(ours.size()) == want.size());
  const std::vector<float> got(ours.data(), ours.data() + ours.size());
  const auto r = mae_test::compare(got.data(), want.data(), static_cast<mae::Index>(want.size()), 1e-6, 1e-5);
  INFO(name << ": " << r.str());
  CHECK(r.bad == 0);
  CHECK(mae_test::rel_dist(got, want) < 1e-6);
}

// Runs the model on the fixture's images.
void forward(Vit& model) {
  const std::vector<float> x = outputs().read<float>("images");
  model.forward(mae::images(x.data(), N, 3, 16, 16), nullptr, /*training=*/false);
}

}  // namespace

TEST_CASE("timm: its encoder folder gives its features, tokens, hidden states and attention probabilities") {
  const mae::safetensors::File f = mae::interchange::open_weights(timm_dir("encoder"));
  CHECK(!f.metadata().count(mae::keys::classifier));  // num_classes 0: an encoder
  Vit::Options o;
  o.num_classes = 1, o.global_pool = false, o.drop_path = 0;
  Vit model(o);
  model.load_encoder(f);
  forward(model);
  check_close(model.features(), "encoder.features");  // norm(x)[:, 0], timm's pre_logits
  for (mae::Index b = 0; b <= 2; ++b) check_close(model.block_output(b), "encoder.hidden." + std::to_string(b));
  for (mae::Index b = 1; b <= 2; ++b) {
    const auto a = model.attention(b);  // (N*H*T, T)
    CHECK(a.rows() == N * H * T);
    CHECK(a.cols() == T);
    check_close(a, "encoder.attention." + std::to_string(b));
  }
  CHECK_THROWS_WITH_AS(model.attention(3), doctest::Contains("no block 3"), mae::Error);

  // the maps drawn from them: the cls token's row per head, and the rollout
  const std::vector<float> a2 = outputs().read<float>("encoder.attention.2"),
                           roll = outputs().read<float>("encoder.rollout");
  for (mae::Index n = 0; n < N; ++n) {
    const std::vector<double> heads = mae::cls_attention(model, 2, n);  // (H, L)
    REQUIRE(heads.size() == static_cast<std::size_t>(H * (T - 1)));
    for (mae::Index h = 0; h < H; ++h)
      for (mae::Index l = 0; l < T - 1; ++l)
        CHECK(heads[h * (T - 1) + l] == doctest::Approx(a2[((n * H + h) * T) * T + 1 + l]).epsilon(1e-5));
    const std::vector<double> r = mae::attention_rollout(model, n);
    REQUIRE(r.size() == static_cast<std::size_t>(T - 1));
    const auto c = mae_test::compare(r.data(), roll.data() + n * (T - 1), T - 1, 1e-7, 1e-5);
    INFO(c.str());
    CHECK(c.bad == 0);
  }
  CHECK_THROWS_WITH_AS(mae::attention_rollout(model, N), doctest::Contains("no image 3"), mae::Error);
  CHECK_THROWS_WITH_AS(model.attention(0), doctest::Contains("no block 0"), mae::Error);

  // the feature extractor reads the folder the same way: every token after the last block
  mae::FeatureExtractor<Cfg> ex(timm_dir("encoder"), {mae::FeatureOptions::Pool::tokens, 0});
  const std::vector<float> x = outputs().read<float>("images");
  const std::vector<float> tokens = ex.encode(
      N, [&](mae::Index i, float* dst) { std::copy(x.begin() + i * 3 * 256, x.begin() + (i + 1) * 3 * 256, dst); });
  const std::vector<float> want = outputs().read<float>("encoder.hidden.2");
  REQUIRE(tokens.size() == want.size());
  CHECK(mae_test::rel_dist(tokens, want) < 1e-6);
}

TEST_CASE("timm: a global_pool='avg' classifier (fc_norm + head) loads with its classes and gives timm's logits") {
  mae::LoadedClassifier<Cfg> c = mae::load_classifier<Cfg>(timm_dir("avg"));
  CHECK(c.info.classes == 5);
  CHECK(c.info.global_pool);
  CHECK(c.info.class_names == std::vector<std::string>{"0", "1", "2", "3", "4"});
  forward(*c.model);
  check_close(c.model->features(), "avg.features");
  check_close(c.model->logits(), "avg.logits");

  // a classifier of the other pooling refuses it, naming the difference
  Vit::Options o;
  o.num_classes = 5, o.global_pool = false, o.drop_path = 0;
  Vit cls(o);
  CHECK_THROWS_WITH_AS(cls.load(mae::interchange::open_weights(timm_dir("avg"))), doctest::Contains("global_pool"),
                       mae::Error);
}

TEST_CASE("timm: our export holds timm's names, shapes and values exactly, and its sizes in config.json") {
  const fs::path dir = mae_test::scratch_dir("timm_export");
  for (const char* kind : {"encoder", "avg"}) {
    const bool avg = std::string(kind) == "avg";
    const mae::safetensors::File theirs(timm_dir(kind) + "/model.safetensors");
    Vit::Options o;
    o.num_classes = avg ? 5 : 1, o.global_pool = avg, o.drop_path = 0;
    Vit model(o);
    if (avg)
      model.load(mae::interchange::open_weights(timm_dir(kind)));
    else
      model.load_encoder(mae::interchange::open_weights(timm_dir(kind)));
    const std::string out = (dir / kind).string();
    if (avg)
      mae::interchange::save_timm_classifier(model, out, {0.5, 0.5, 0.5}, {0.25, 0.25, 0.25},
                                             {"a", "b", "c", "d", "e"});
    else
      mae::interchange::save_timm(model, out, {0.5, 0.5, 0.5}, {0.25, 0.25, 0.25});
    const mae::safetensors::File ours(out + "/model.safetensors");
    std::set<std::string> a, b;
    for (const auto& [name, e] : ours.tensors()) a.insert(name);
    for (const auto& [name, e] : theirs.tensors()) b.insert(name);
    CHECK(a == b);  // timm's load_state_dict(strict=True) asks exactly this
    for (const auto& name : b) {
      if (!ours.contains(name)) continue;
      CAPTURE(name);
      CHECK(ours.entry(name).shape == theirs.entry(name).shape);
      CHECK(ours.read<float>(name) == theirs.read<float>(name));
    }
    const auto mine = nlohmann::json::parse(mae_test::slurp(out + "/config.json"));
    const auto timms = nlohmann::json::parse(mae_test::slurp(timm_dir(kind) + "/config.json"));
    for (const char* field :
         {"img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads", "num_classes", "global_pool"}) {
      CAPTURE(field);
      CHECK(mine.at("model_args").at(field) == timms.at("model_args").at(field));
    }
    CHECK(mine.at("num_classes") == timms.at("num_classes"));
    if (avg) CHECK(mine.at("label_names") == nlohmann::json({"a", "b", "c", "d", "e"}));
  }
}

TEST_CASE("timm: a config.json of another model is refused, naming the size") {
  const fs::path dir = mae_test::scratch_dir("timm_wrong");
  fs::copy_file(timm_dir("encoder") + "/model.safetensors", dir / "model.safetensors");
  auto config = nlohmann::json::parse(mae_test::slurp(timm_dir("encoder") + "/config.json"));
  config["model_args"]["num_heads"] = 4;  // the same tensors, another attention: only the config tells
  mae_test::spit(dir / "config.json", config.dump());
  Vit model;
  CHECK_THROWS_WITH_AS(model.load_encoder(dir.string()), doctest::Contains("num_heads is 4, this model's is 3"),
                       mae::Error);
  config["model_args"].erase("num_heads");
  config["architecture"] = "vit_base_patch16_224";  // the architecture's own sizes then: 12 heads
  mae_test::spit(dir / "config.json", config.dump());
  CHECK_THROWS_WITH_AS(model.load_encoder(dir.string()), doctest::Contains("num_heads is 12, this model's is 3"),
                       mae::Error);
}

TEST_CASE("Hugging Face: a cls-token classifier goes to ViTForImageClassification and back; global pooling refused") {
  const fs::path dir = mae_test::scratch_dir("hf_classifier");
  Vit::Options o;
  o.num_classes = 4, o.global_pool = false, o.drop_path = 0, o.seed = 3;
  Vit model(o);
  for (mae::Index i = 0; i < model.parameters().size(); ++i)  // no zero bias: each tensor must land in its place
    model.parameters().data()[i] += 0.01f * static_cast<float>(i % 7);
  const std::vector<std::string> names = {"cat", "dog", "bird", "fish"};
  mae::interchange::save_hugging_face_classifier(model, (dir / "hf").string(), {0.1, 0.2, 0.3}, {0.4, 0.5, 0.6}, names);
  const mae::safetensors::File hf((dir / "hf" / "model.safetensors").string());
  CHECK(hf.contains("classifier.weight"));
  CHECK(hf.contains("vit.layernorm.weight"));
  CHECK(hf.contains("vit.encoder.layer.1.attention.attention.value.bias"));
  CHECK(!hf.contains("head.weight"));
  const auto config = nlohmann::json::parse(mae_test::slurp(dir / "hf" / "config.json"));
  CHECK(config.at("architectures") == nlohmann::json({"ViTForImageClassification"}));
  CHECK(config.at("id2label").at("2") == "bird");
  CHECK(config.at("label2id").at("fish") == 3);
  CHECK(config.at("layer_norm_eps") == 1e-6);

  // back: a classifier of its classes, names and normalization, every parameter bit for bit
  mae::LoadedClassifier<Cfg> back = mae::load_classifier<Cfg>((dir / "hf").string());
  CHECK(back.info.class_names == names);
  CHECK(!back.info.global_pool);
  CHECK(mae::read_normalization(back.metadata, "hf", 3)->stddev == std::vector<double>{0.4, 0.5, 0.6});
  REQUIRE(back.model->parameters().size() == model.parameters().size());
  CHECK(std::equal(model.parameters().data(), model.parameters().data() + model.parameters().size(),
                   back.model->parameters().data()));

  o.global_pool = true;
  Vit pooled(o);
  CHECK_THROWS_WITH_AS(mae::interchange::save_hugging_face_classifier(pooled, (dir / "pooled").string(),
                                                                      {0.1, 0.2, 0.3}, {0.4, 0.5, 0.6}, names),
                       doctest::Contains("classifies the normed cls token"), mae::Error);
  CHECK(!fs::exists(dir / "pooled"));
}

TEST_CASE("linear probe: its BatchNorm folded into the linear layer gives the probe's logits, from memory or file") {
  constexpr mae::Index F = 6, K = 3, B = 16;
  mae::LinearProbe<float> probe(F, K, 5);
  mae::Rng r(9);
  std::vector<float> x(B * F);
  std::vector<int> y(B);
  for (auto& v : x) v = static_cast<float>(2.0 + 3.0 * r.normal());  // far from the initial statistics
  for (mae::Index n = 0; n < B; ++n) y[n] = static_cast<int>(n % K);
  for (int s = 0; s < 20; ++s) probe.forward_backward(x.data(), y.data(), B);  // the running statistics move
  for (mae::Index i = 0; i < K * F; ++i) probe.parameters().data()[i] += 0.3f * static_cast<float>(i % 5);
  std::vector<float> want(B * K);
  probe.predict(x.data(), B, want.data());
  const auto check = [&](const mae::FoldedProbe& p) {
    REQUIRE(p.classes == K);
    REQUIRE(p.features == F);
    std::vector<double> got(B * K);
    for (mae::Index n = 0; n < B; ++n)
      for (mae::Index k = 0; k < K; ++k) {
        double z = p.bias[k];
        for (mae::Index f = 0; f < F; ++f) z += p.weight[k * F + f] * x[n * F + f];
        got[n * K + k] = z;
      }
    const auto c = mae_test::compare(got.data(), want.data(), B * K, 1e-5, 1e-5);
    INFO(c.str());
    CHECK(c.bad == 0);
  };
  check(probe.folded());
  const fs::path dir = mae_test::scratch_dir("probe_fold");
  probe.save((dir / "probe.safetensors").string());
  check(mae::read_folded_probe(mae::safetensors::File((dir / "probe.safetensors").string())));
  // the identity BatchNorm (mean 0, var 1 - eps) folds to the linear layer itself
  const float w[2] = {1.5f, -2.f}, b[1] = {0.25f}, m[2] = {0, 0}, v[2] = {1 - 1e-6f, 1 - 1e-6f};
  const mae::FoldedProbe id = mae::fold_batch_norm(w, b, m, v, 1, 2);
  CHECK(id.weight[0] == doctest::Approx(1.5).epsilon(1e-7));
  CHECK(id.bias[0] == doctest::Approx(0.25));
}
