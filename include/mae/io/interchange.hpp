// mae/io/interchange.hpp — an MAE's weights under Hugging Face's names (ViTMAEForPreTraining,
// ViTMAEModel), to and from the official state-dict names that mae's files use. One table
// serves both directions; the official fused qkv is split into HF's query, key and value (rows
// [0, D), [D, 2D), [2D, 3D)) and joined back, so official -> HF -> official is bit for bit.
//
// The names are those of transformers' convert_vit_mae_to_pytorch.py (the script that made
// facebook/vit-mae-base|large|huge from the official visualize checkpoints), read as facts:
//   cls_token              vit.embeddings.cls_token
//   pos_embed              vit.embeddings.position_embeddings
//   patch_embed.proj.*     vit.embeddings.patch_embeddings.projection.*
//   blocks.N.*             vit.encoder.layer.N.*          (the block names below)
//   norm.*                 vit.layernorm.*
//   mask_token             decoder.mask_token
//   decoder_pos_embed      decoder.decoder_pos_embed
//   decoder_embed|norm|pred.*  decoder.decoder_embed|norm|pred.*
//   decoder_blocks.N.*     decoder.decoder_layers.N.*     (the block names below)
// and in a block: norm1 -> layernorm_before, attn.qkv -> attention.attention.query|key|value,
// attn.proj -> attention.output.dense, norm2 -> layernorm_after, mlp.fc1 -> intermediate.dense,
// mlp.fc2 -> output.dense.
//
//   const safetensors::File f = interchange::open_weights(path);  // a folder, mae's or HF's file
//   model.load(f);                                                 // official names, whatever came in
#ifndef MAE_IO_INTERCHANGE_HPP
#define MAE_IO_INTERCHANGE_HPP

#include "../core/common.hpp"
#include "files.hpp"
#include "safetensors.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mae::interchange {

struct Rename {
  const char* official;
  const char* hf;
};

// Outside the blocks.
inline constexpr Rename kModelNames[] = {
    {"cls_token", "vit.embeddings.cls_token"},
    {"pos_embed", "vit.embeddings.position_embeddings"},
    {"patch_embed.proj.weight", "vit.embeddings.patch_embeddings.projection.weight"},
    {"patch_embed.proj.bias", "vit.embeddings.patch_embeddings.projection.bias"},
    {"norm.weight", "vit.layernorm.weight"},
    {"norm.bias", "vit.layernorm.bias"},
    {"mask_token", "decoder.mask_token"},
    {"decoder_pos_embed", "decoder.decoder_pos_embed"},
    {"decoder_embed.weight", "decoder.decoder_embed.weight"},
    {"decoder_embed.bias", "decoder.decoder_embed.bias"},
    {"decoder_norm.weight", "decoder.decoder_norm.weight"},
    {"decoder_norm.bias", "decoder.decoder_norm.bias"},
    {"decoder_pred.weight", "decoder.decoder_pred.weight"},
    {"decoder_pred.bias", "decoder.decoder_pred.bias"},
};
// Inside a block (after "blocks.N." / "vit.encoder.layer.N.", and the decoder's).
inline constexpr Rename kBlockNames[] = {
    {"norm1.weight", "layernorm_before.weight"},
    {"norm1.bias", "layernorm_before.bias"},
    {"attn.proj.weight", "attention.output.dense.weight"},
    {"attn.proj.bias", "attention.output.dense.bias"},
    {"norm2.weight", "layernorm_after.weight"},
    {"norm2.bias", "layernorm_after.bias"},
    {"mlp.fc1.weight", "intermediate.dense.weight"},
    {"mlp.fc1.bias", "intermediate.dense.bias"},
    {"mlp.fc2.weight", "output.dense.weight"},
    {"mlp.fc2.bias", "output.dense.bias"},
};
// The block prefixes: official, HF.
inline constexpr Rename kBlockPrefixes[] = {{"blocks.", "vit.encoder.layer."},
                                            {"decoder_blocks.", "decoder.decoder_layers."}};
inline constexpr const char* kQkvParts[] = {"query", "key", "value"};

// A tensor held in memory: a name, a shape, float values.
struct Tensor {
  std::string name;
  Shape shape;
  std::vector<float> values;
};

namespace detail {
// "blocks.3.mlp.fc1.weight" with from = "blocks." -> ("3", "mlp.fc1.weight"); nullopt when the
// name is not inside such a block.
inline std::optional<std::pair<std::string, std::string>> split_block(const std::string& name, const char* from) {
  const std::string p(from);
  if (name.compare(0, p.size(), p) != 0) return std::nullopt;
  const std::size_t dot = name.find('.', p.size());
  if (dot == std::string::npos || dot == p.size()) return std::nullopt;
  const std::string n = name.substr(p.size(), dot - p.size());
  if (n.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return std::make_pair(n, name.substr(dot + 1));
}
}  // namespace detail

// The HF name of an official one (qkv excepted: it becomes three); nullopt when the table has
// no such name.
inline std::optional<std::string> hf_name(const std::string& official) {
  for (const auto& r : kModelNames)
    if (official == r.official) return std::string(r.hf);
  for (const auto& pre : kBlockPrefixes)
    if (const auto b = detail::split_block(official, pre.official))
      for (const auto& r : kBlockNames)
        if (b->second == r.official) return pre.hf + b->first + "." + r.hf;
  return std::nullopt;
}
// The official name of an HF one (query, key and value excepted); nullopt when there is none.
inline std::optional<std::string> official_name(const std::string& hf) {
  for (const auto& r : kModelNames)
    if (hf == r.hf) return std::string(r.official);
  for (const auto& pre : kBlockPrefixes)
    if (const auto b = detail::split_block(hf, pre.hf))
      for (const auto& r : kBlockNames)
        if (b->second == r.hf) return pre.official + b->first + "." + r.official;
  return std::nullopt;
}

// Does the file hold HF's names (any tensor under "vit." or "decoder.")?
inline bool is_hugging_face(const safetensors::File& f) {
  for (const auto& [name, e] : f.tensors())
    if (name.rfind("vit.", 0) == 0 || name.rfind("decoder.", 0) == 0) return true;
  return false;
}

// Official -> HF: every tensor renamed, each qkv split into three. A name outside the table is
// refused (named), so nothing is dropped without a word.
inline std::vector<Tensor> to_hugging_face(const safetensors::File& f) {
  std::vector<Tensor> out;
  for (const auto& [name, e] : f.tensors()) {
    Shape shape;
    std::vector<float> v = f.read<float>(name, &shape);
    bool done = false;
    for (const auto& pre : kBlockPrefixes) {
      const auto b = detail::split_block(name, pre.official);
      if (!b || (b->second != "attn.qkv.weight" && b->second != "attn.qkv.bias")) continue;
      if (shape.empty() || shape[0] % 3 != 0) f.fail("tensor '" + name + "': its first dimension is not 3 x width");
      const std::string kind = b->second == "attn.qkv.weight" ? "weight" : "bias";
      Shape part = shape;
      part[0] /= 3;
      const std::size_t n = v.size() / 3;
      for (int k = 0; k < 3; ++k)
        out.push_back({pre.hf + b->first + ".attention.attention." + kQkvParts[k] + "." + kind, part,
                       std::vector<float>(v.begin() + static_cast<std::ptrdiff_t>(k * n),
                                          v.begin() + static_cast<std::ptrdiff_t>((k + 1) * n))});
      done = true;
    }
    if (done) continue;
    const auto hf = hf_name(name);
    if (!hf) f.fail("tensor '" + name + "' has no Hugging Face name (not an MAE's weight)");
    out.push_back({*hf, shape, std::move(v)});
  }
  return out;
}

// HF -> official: every tensor renamed, each block's query, key and value joined into qkv (all
// three present, of one shape). A name outside the table is refused, named.
inline std::vector<Tensor> from_hugging_face(const safetensors::File& f) {
  std::vector<Tensor> out;
  std::map<std::string, std::vector<const std::string*>> qkv;  // official qkv name -> its parts' names
  for (const auto& [name, e] : f.tensors()) {
    bool part = false;
    for (const auto& pre : kBlockPrefixes) {
      const auto b = detail::split_block(name, pre.hf);
      if (!b) continue;
      for (int k = 0; k < 3; ++k)
        for (const char* kind : {"weight", "bias"})
          if (b->second == std::string("attention.attention.") + kQkvParts[k] + "." + kind) {
            auto& parts = qkv[pre.official + b->first + ".attn.qkv." + kind];
            parts.resize(3, nullptr);
            parts[static_cast<std::size_t>(k)] = &name;
            part = true;
          }
    }
    if (part) continue;
    const auto official = official_name(name);
    if (!official) f.fail("tensor '" + name + "' is not one of ViTMAE's (no official name)");
    Shape shape;
    std::vector<float> v = f.read<float>(name, &shape);
    out.push_back({*official, shape, std::move(v)});
  }
  for (const auto& [name, parts] : qkv) {
    Tensor t{name, {}, {}};
    for (int k = 0; k < 3; ++k) {
      if (!parts[static_cast<std::size_t>(k)])
        f.fail("the " + std::string(kQkvParts[k]) + " of '" + name + "' is missing (query, key and value make it)");
      Shape shape;
      const std::vector<float> v = f.read<float>(*parts[static_cast<std::size_t>(k)], &shape);
      if (k == 0) t.shape = shape;
      if (shape != t.shape || shape.empty())
        f.fail("'" + *parts[static_cast<std::size_t>(k)] + "' has shape " + shape_string(shape) +
               ", unlike the query's " + shape_string(t.shape));
      t.values.insert(t.values.end(), v.begin(), v.end());
    }
    t.shape[0] *= 3;
    out.push_back(std::move(t));
  }
  return out;
}

// The bytes of a safetensors file holding `tensors` and `metadata`.
inline std::string serialize(const std::vector<Tensor>& tensors, const std::map<std::string, std::string>& metadata) {
  std::vector<safetensors::TensorOut> out;
  for (const auto& t : tensors) out.push_back(safetensors::TensorOut::of<float>(t.name, t.shape, t.values.data()));
  return safetensors::serialize(out, metadata);
}

// The metadata key under which open_weights keeps a Hugging Face folder's config.json.
inline constexpr char kHuggingFaceConfig[] = "mae.hugging_face_config";

// The sizes of ViTMAEConfig (a folder's config.json) for the configuration Cfg.
template <class Cfg>
std::vector<std::pair<const char*, int>> hugging_face_sizes() {
  return {{"hidden_size", Cfg::embed_dim},
          {"num_hidden_layers", Cfg::depth},
          {"num_attention_heads", Cfg::num_heads},
          {"intermediate_size", Cfg::mlp_hidden},
          {"decoder_hidden_size", Cfg::decoder_embed_dim},
          {"decoder_num_hidden_layers", Cfg::decoder_depth},
          {"decoder_num_attention_heads", Cfg::decoder_num_heads},
          {"decoder_intermediate_size", Cfg::decoder_mlp_hidden},
          {"image_size", Cfg::img_size},
          {"patch_size", Cfg::patch_size},
          {"num_channels", Cfg::in_chans}};
}

// ViTMAEConfig's fields for the configuration Cfg. layer_norm_eps is MAE's 1e-6 (ViTMAEConfig's
// default, 1e-12, is not what the weights were trained with).
template <class Cfg>
nlohmann::json hugging_face_config(bool norm_pix_loss, double mask_ratio = 0.75) {
  nlohmann::json c = {{"architectures", {"ViTMAEForPreTraining"}},
                      {"model_type", "vit_mae"},
                      {"hidden_act", "gelu"},
                      {"hidden_dropout_prob", 0.0},
                      {"attention_probs_dropout_prob", 0.0},
                      {"initializer_range", 0.02},
                      {"layer_norm_eps", 1e-6},
                      {"qkv_bias", true},
                      {"mask_ratio", mask_ratio},
                      {"norm_pix_loss", norm_pix_loss}};
  for (const auto& [field, v] : hugging_face_sizes<Cfg>()) c[field] = v;
  return c;
}

// A Hugging Face config.json against Cfg: every size it gives must be Cfg's (the first that is
// not is named; a missing field is not checked). `where` names the file. With any_image_size,
// image_size may differ (an encoder taken to another grid). layer_norm_eps other than 1e-6 gets a
// note on standard error: mae computes with 1e-6, as the official code (a published config
// that says 1e-12 describes the same weights).
template <class Cfg>
void check_hugging_face_config(const nlohmann::json& c, const std::string& where, bool any_image_size = false) {
  const auto sizes = hugging_face_sizes<Cfg>();
  if (!c.is_object()) throw Error(where + ": config.json is not a JSON object");
  for (const auto& [field, want] : sizes) {
    if (!c.contains(field) || (any_image_size && std::string(field) == "image_size")) continue;
    if (!c[field].is_number_integer() || c[field].template get<long long>() != want)
      throw Error(where + ": " + field + " is " + c[field].dump() + ", this model's is " + std::to_string(want) + " (" +
                  Cfg::name() + ")");
  }
  if (c.contains("layer_norm_eps") && c["layer_norm_eps"].is_number() &&
      c["layer_norm_eps"].template get<double>() != 1e-6)
    std::fprintf(stderr, "note: %s: layer_norm_eps %s; mae uses MAE's 1e-6\n", where.c_str(),
                 c["layer_norm_eps"].dump().c_str());
}

// The weights at `path` under the official names: mae's own file or a converted official one as
// it is; a Hugging Face ViTMAE file renamed (and its qkv joined) in memory. A folder stands for
// its model.safetensors (a Hugging Face or timm folder).
inline safetensors::File open_weights(const std::string& path) {
  std::string file = path;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    file = (std::filesystem::path(path) / "model.safetensors").string();
    if (!std::filesystem::exists(file, ec))
      throw Error(path + ": a folder without model.safetensors (a Hugging Face or timm folder holds one)");
  }
  safetensors::File f(file);
  if (!is_hugging_face(f)) return f;
  std::map<std::string, std::string> meta = f.metadata();
  const std::filesystem::path config = std::filesystem::path(file).parent_path() / "config.json";
  if (std::filesystem::is_regular_file(config, ec)) meta[kHuggingFaceConfig] = read_file(config.string());
  return safetensors::File::from_bytes(file + " (Hugging Face names)", serialize(from_hugging_face(f), meta));
}

// A ViTMAEForPreTraining folder: model.safetensors under HF's names, config.json (ViTMAEConfig),
// and preprocessor_config.json (ViTImageProcessor: resize to the model's size, bicubic, the
// normalization the model was trained with). `model` is an MAE (MaskedAutoencoder).
template <class Model>
void save_hugging_face(const Model& model, const std::string& dir, const std::vector<double>& mean,
                       const std::vector<double>& stddev, bool norm_pix_loss) {
  using Cfg = typename Model::Config;
  std::filesystem::create_directories(dir);
  const safetensors::File ours =
      safetensors::File::from_bytes(dir, safetensors::serialize(model.state_dict(), model.metadata()));
  write_file(dir + "/model.safetensors", serialize(to_hugging_face(ours), {{"format", "pt"}}));
  write_file(dir + "/config.json", hugging_face_config<Cfg>(norm_pix_loss).dump(2) + "\n");
  const nlohmann::json pre = {{"image_processor_type", "ViTImageProcessor"},
                              {"do_resize", true},
                              {"size", {{"height", Cfg::img_size}, {"width", Cfg::img_size}}},
                              {"resample", 3},
                              {"do_rescale", true},
                              {"rescale_factor", 1.0 / 255.0},
                              {"do_normalize", true},
                              {"image_mean", mean},
                              {"image_std", stddev}};
  write_file(dir + "/preprocessor_config.json", pre.dump(2) + "\n");
}

// timm's VisionTransformer holding an MAE's encoder (num_classes 0, the class token's output, as
// timm's `vit_base_patch16_224.mae`): model.safetensors with the encoder's official names (timm's
// own), and config.json (architecture, model_args, pretrained_cfg with the normalization).
template <class Model>
void save_timm(const Model& model, const std::string& dir, const std::vector<double>& mean,
               const std::vector<double>& stddev) {
  using Cfg = typename Model::Config;
  std::filesystem::create_directories(dir);
  std::vector<safetensors::TensorOut> encoder;
  for (const auto& t : model.state_dict())
    if (t.name == "cls_token" || t.name == "pos_embed" || t.name.rfind("patch_embed.", 0) == 0 ||
        t.name.rfind("blocks.", 0) == 0 || t.name.rfind("norm.", 0) == 0)
      encoder.push_back(t);
  write_file(dir + "/model.safetensors", safetensors::serialize(encoder, {{"format", "pt"}}));
  const nlohmann::json config = {{"architecture", "vit_base_patch16_224"},
                                 {"num_classes", 0},
                                 {"global_pool", "token"},
                                 {"model_args",
                                  {{"img_size", Cfg::img_size},
                                   {"patch_size", Cfg::patch_size},
                                   {"in_chans", Cfg::in_chans},
                                   {"embed_dim", Cfg::embed_dim},
                                   {"depth", Cfg::depth},
                                   {"num_heads", Cfg::num_heads},
                                   {"mlp_ratio", Cfg::mlp_ratio},
                                   {"num_classes", 0},
                                   {"global_pool", "token"}}},
                                 {"pretrained_cfg",
                                  {{"input_size", {Cfg::in_chans, Cfg::img_size, Cfg::img_size}},
                                   {"interpolation", "bicubic"},
                                   {"crop_pct", Cfg::img_size <= 224 ? 0.875 : 1.0},
                                   {"mean", mean},
                                   {"std", stddev},
                                   {"num_classes", 0}}}};
  write_file(dir + "/config.json", config.dump(2) + "\n");
}

}  // namespace mae::interchange

#endif  // MAE_IO_INTERCHANGE_HPP
