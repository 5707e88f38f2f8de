// checkpoint.hpp (the metadata every mae file carries, a run's state) and the optimizer's own
// state (optim.hpp): written, read back the same, and refused by name when wrong.
#include "test_util.hpp"

#include <mae/io/checkpoint.hpp>
#include <mae/io/interchange.hpp>
#include <mae/models/masked_autoencoder.hpp>
#include <mae/training/optim.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <set>
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

TEST_CASE("Hugging Face names: one table both ways, qkv split and joined bit for bit, an HF file or folder loads") {
  using Cfg = mae::Config<16, 4, 3, 12, 2, 3, 8, 1, 2>;  // D 12 (3 heads), decoder 8 wide, 1 block
  using M = mae::MaskedAutoencoder<Cfg>;
  const M model(M::Options{false, 7});
  const fs::path dir = mae_test::scratch_dir("hugging_face");
  model.save((dir / "ours.safetensors").string());
  const mae::safetensors::File ours((dir / "ours.safetensors").string());
  const std::vector<mae::interchange::Tensor> hf = mae::interchange::to_hugging_face(ours);

  // the names of ViTMAEForPreTraining (convert_vit_mae_to_pytorch.py's), for this configuration
  std::set<std::string> want = {"vit.embeddings.cls_token",
                                "vit.embeddings.position_embeddings",
                                "vit.embeddings.patch_embeddings.projection.weight",
                                "vit.embeddings.patch_embeddings.projection.bias",
                                "vit.layernorm.weight",
                                "vit.layernorm.bias",
                                "decoder.mask_token",
                                "decoder.decoder_pos_embed",
                                "decoder.decoder_embed.weight",
                                "decoder.decoder_embed.bias",
                                "decoder.decoder_norm.weight",
                                "decoder.decoder_norm.bias",
                                "decoder.decoder_pred.weight",
                                "decoder.decoder_pred.bias"};
  for (const auto& [prefix, blocks] :
       {std::pair<std::string, int>{"vit.encoder.layer.", 2}, {"decoder.decoder_layers.", 1}})
    for (int b = 0; b < blocks; ++b)
      for (const char* part :
           {"layernorm_before", "attention.attention.query", "attention.attention.key", "attention.attention.value",
            "attention.output.dense", "layernorm_after", "intermediate.dense", "output.dense"})
        for (const char* kind : {".weight", ".bias"}) want.insert(prefix + std::to_string(b) + "." + part + kind);
  std::set<std::string> got;
  for (const auto& t : hf) got.insert(t.name);
  CHECK(got == want);

  // query, key and value are the rows of qkv, in that order
  const std::vector<float> qkv = ours.read<float>("blocks.1.attn.qkv.weight");
  for (const auto& t : hf)
    if (t.name == "vit.encoder.layer.1.attention.attention.key.weight") {
      CHECK(t.shape == mae::Shape{12, 12});
      CHECK(t.values == std::vector<float>(qkv.begin() + 144, qkv.begin() + 288));
    }
  const std::vector<float> dec_bias = ours.read<float>("decoder_blocks.0.attn.qkv.bias");
  for (const auto& t : hf)
    if (t.name == "decoder.decoder_layers.0.attention.attention.value.bias")
      CHECK(t.values == std::vector<float>(dec_bias.begin() + 16, dec_bias.end()));

  // and back: every tensor bit for bit, under its official name
  mae_test::spit(dir / "hf.safetensors", mae::interchange::serialize(hf, {}));
  const mae::safetensors::File back = mae::interchange::open_weights((dir / "hf.safetensors").string());
  REQUIRE(back.tensors().size() == ours.tensors().size());
  for (const auto& [name, e] : ours.tensors()) {
    REQUIRE(back.contains(name));
    CHECK(back.entry(name).shape == e.shape);
    CHECK(back.read<float>(name) == ours.read<float>(name));
  }

  // a Hugging Face folder loads into a model: the same parameters
  fs::create_directories(dir / "folder");
  fs::copy_file(dir / "hf.safetensors", dir / "folder" / "model.safetensors");
  M other(M::Options{false, 8});
  REQUIRE(other.parameters().size() == model.parameters().size());
  CHECK(!std::equal(model.parameters().data(), model.parameters().data() + model.parameters().size(),
                    other.parameters().data()));
  other.load((dir / "folder").string());
  CHECK(std::equal(model.parameters().data(), model.parameters().data() + model.parameters().size(),
                   other.parameters().data()));

  // a ViTMAEForPreTraining folder written by save_hugging_face: config.json with MAE's eps, the
  // processor's normalization; it loads back; a config of another model is refused, naming the field
  const std::string out = (dir / "export").string();
  mae::interchange::save_hugging_face(model, out, {0.1, 0.2, 0.3}, {0.4, 0.5, 0.6}, false);
  const auto config = nlohmann::json::parse(mae_test::slurp(out + "/config.json"));
  CHECK(config.at("hidden_size") == 12);
  CHECK(config.at("num_attention_heads") == 3);
  CHECK(config.at("decoder_num_hidden_layers") == 1);
  CHECK(config.at("intermediate_size") == 48);
  CHECK(config.at("layer_norm_eps") == 1e-6);
  const auto pre = nlohmann::json::parse(mae_test::slurp(out + "/preprocessor_config.json"));
  CHECK(pre.at("image_mean") == nlohmann::json({0.1, 0.2, 0.3}));
  CHECK(pre.at("size").at("height") == 16);
  M third(M::Options{false, 9});
  third.load(out);
  CHECK(std::equal(model.parameters().data(), model.parameters().data() + model.parameters().size(),
                   third.parameters().data()));
  auto wrong = config;
  wrong["num_attention_heads"] = 4;
  mae_test::spit(out + "/config.json", wrong.dump());
  CHECK_THROWS_WITH_AS(third.load(out), doctest::Contains("num_attention_heads is 4, this model's is 3"), mae::Error);
  wrong = config;
  wrong["layer_norm_eps"] = 1e-12;  // ViTMAEConfig's default, as published configs say: a note, not a refusal
  mae_test::spit(out + "/config.json", wrong.dump());
  third.load(out);

  // refusals, named: a part of qkv missing, a name outside the table, a folder without weights
  std::vector<mae::interchange::Tensor> cut;
  for (const auto& t : hf)
    if (t.name != "vit.encoder.layer.0.attention.attention.key.bias") cut.push_back(t);
  mae_test::spit(dir / "cut.safetensors", mae::interchange::serialize(cut, {}));
  CHECK_THROWS_WITH_AS(mae::interchange::open_weights((dir / "cut.safetensors").string()),
                       doctest::Contains("the key of 'blocks.0.attn.qkv.bias' is missing"), mae::Error);
  cut = hf;
  cut.push_back({"vit.pooler.dense.weight", {1}, {0.f}});
  mae_test::spit(dir / "extra.safetensors", mae::interchange::serialize(cut, {}));
  CHECK_THROWS_WITH_AS(mae::interchange::open_weights((dir / "extra.safetensors").string()),
                       doctest::Contains("'vit.pooler.dense.weight' is not one of ViTMAE's"), mae::Error);
  fs::create_directories(dir / "empty");
  CHECK_THROWS_WITH_AS(mae::interchange::open_weights((dir / "empty").string()),
                       doctest::Contains("a folder without model.safetensors"), mae::Error);
}
