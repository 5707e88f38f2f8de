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
#include "checkpoint.hpp"
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
    {"head.weight", "classifier.weight"},  // ViTForImageClassification's head, on the normed cls token
    {"head.bias", "classifier.bias"},
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

// The HF name of an official one (to_hf), or the official name of an HF one (qkv and query,
// key, value excepted: one becomes three); nullopt when the table has no such name.
inline std::optional<std::string> renamed(const std::string& name, bool to_hf) {
  const auto from = [to_hf](const Rename& r) { return to_hf ? r.official : r.hf; };
  const auto to = [to_hf](const Rename& r) { return std::string(to_hf ? r.hf : r.official); };
  for (const auto& r : kModelNames)
    if (name == from(r)) return to(r);
  for (const auto& pre : kBlockPrefixes)
    if (const auto b = detail::split_block(name, from(pre)))
      for (const auto& r : kBlockNames)
        if (b->second == from(r)) return to(pre) + b->first + "." + to(r);
  return std::nullopt;
}
inline std::optional<std::string> hf_name(const std::string& official) { return renamed(official, true); }
inline std::optional<std::string> official_name(const std::string& hf) { return renamed(hf, false); }

// Does the file hold HF's names (any tensor under "vit." or "decoder.")?
inline bool is_hugging_face(const safetensors::File& f) {
  for (const auto& [name, e] : f.tensors())
    if (name.rfind("vit.", 0) == 0 || name.rfind("decoder.", 0) == 0) return true;
  return false;
}

// Is `name` one of the tensors of timm's VisionTransformer that mae's ViT has (cls_token,
// pos_embed, patch_embed.proj, blocks.N's norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2,
// norm, fc_norm, head)? A timm model with more (LayerScale's ls1.gamma, qk_norm, register
// tokens...) computes something else: refused rather than loaded in part.
inline bool is_timm_vit_name(const std::string& name) {
  static const char* const kTop[] = {"cls_token",   "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias",
                                     "norm.weight", "norm.bias", "fc_norm.weight",          "fc_norm.bias",
                                     "head.weight", "head.bias"};
  for (const char* t : kTop)
    if (name == t) return true;
  const auto b = detail::split_block(name, "blocks.");
  if (!b) return false;
  for (const auto& r : kBlockNames)
    if (b->second == r.official) return true;
  return b->second == "attn.qkv.weight" || b->second == "attn.qkv.bias";
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

// The fields of a Hugging Face ViT config.json (ViTMAEConfig's, ViTConfig's) for the
// configuration Cfg: the architecture and model_type, the encoder's sizes and the decoder's
// (with_decoder), no dropout, qkv bias. layer_norm_eps is MAE's 1e-6 (the configs' default,
// 1e-12, is not what the weights were trained with).
template <class Cfg>
nlohmann::json hugging_face_fields(const char* architecture, const char* model_type, bool with_decoder) {
  nlohmann::json c = {{"architectures", {architecture}},
                      {"model_type", model_type},
                      {"hidden_act", "gelu"},
                      {"hidden_dropout_prob", 0.0},
                      {"attention_probs_dropout_prob", 0.0},
                      {"initializer_range", 0.02},
                      {"layer_norm_eps", 1e-6},
                      {"qkv_bias", true}};
  for (const auto& [field, v] : hugging_face_sizes<Cfg>())
    if (with_decoder || std::string(field).rfind("decoder_", 0) != 0) c[field] = v;
  return c;
}

// ViTMAEConfig's fields for the configuration Cfg.
template <class Cfg>
nlohmann::json hugging_face_config(bool norm_pix_loss, double mask_ratio = 0.75) {
  nlohmann::json c = hugging_face_fields<Cfg>("ViTMAEForPreTraining", "vit_mae", /*with_decoder=*/true);
  c["mask_ratio"] = mask_ratio, c["norm_pix_loss"] = norm_pix_loss;
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

// The metadata key under which open_weights keeps a timm folder's config.json.
inline constexpr char kTimmConfig[] = "mae.timm_config";

// The sizes of timm's VisionTransformer for the configuration Cfg (model_args' names).
template <class Cfg>
std::vector<std::pair<const char*, int>> timm_sizes() {
  return {{"img_size", Cfg::img_size},   {"patch_size", Cfg::patch_size}, {"in_chans", Cfg::in_chans},
          {"embed_dim", Cfg::embed_dim}, {"depth", Cfg::depth},           {"num_heads", Cfg::num_heads},
          {"mlp_ratio", Cfg::mlp_ratio}};
}

// The sizes a timm config.json gives: its architecture's (vit_{tiny,small,base,large,huge}_
// patchP_S, as timm registers them), overridden by its model_args.
inline nlohmann::json timm_model_args(const nlohmann::json& c) {
  nlohmann::json args = nlohmann::json::object();
  const std::string arch = c.value("architecture", std::string());
  static const struct {
    const char* name;
    int dim, depth, heads;
  } kWidths[] = {{"tiny", 192, 12, 3},
                 {"small", 384, 12, 6},
                 {"base", 768, 12, 12},
                 {"large", 1024, 24, 16},
                 {"huge", 1280, 32, 16}};
  for (const auto& w : kWidths) {
    const std::string prefix = std::string("vit_") + w.name + "_patch";
    if (arch.rfind(prefix, 0) != 0) continue;
    int patch = 0, size = 0;
    char tail = 0;
    if (std::sscanf(arch.c_str() + prefix.size(), "%d_%d%c", &patch, &size, &tail) == 2)
      args = {{"patch_size", patch},  {"img_size", size}, {"embed_dim", w.dim}, {"depth", w.depth},
              {"num_heads", w.heads}, {"mlp_ratio", 4},   {"in_chans", 3}};
  }
  if (c.contains("model_args") && c["model_args"].is_object())
    for (const auto& [k, v] : c["model_args"].items()) args[k] = v;
  return args;
}

// A timm config.json against Cfg: the sizes it gives (timm_model_args) must be Cfg's, the first
// that is not named; an option that makes another network than mae's ViT is refused (a missing
// size is not checked: the tensors' shapes still are). With any_image_size, img_size may differ.
template <class Cfg>
void check_timm_config(const nlohmann::json& c, const std::string& where, bool any_image_size = false) {
  if (!c.is_object()) throw Error(where + ": config.json is not a JSON object");
  const nlohmann::json args = timm_model_args(c);
  for (const auto& [field, want] : timm_sizes<Cfg>()) {
    if (!args.contains(field) || (any_image_size && std::string(field) == "img_size")) continue;
    if (!args[field].is_number() || args[field].template get<double>() != want)
      throw Error(where + ": " + field + " is " + args[field].dump() + ", this model's is " + std::to_string(want) +
                  " (" + Cfg::name() + ")");
  }
  // what else model_args may say and still describe mae's ViT
  const std::map<std::string, nlohmann::json> same = {
      {"class_token", true}, {"qkv_bias", true}, {"no_embed_class", false}, {"pre_norm", false},
      {"reg_tokens", 0},     {"qk_norm", false}, {"drop_rate", 0.0}};
  for (const auto& [k, v] : args.items()) {
    if (k == "num_classes" || k == "drop_path_rate" || k == "fc_norm" || k == "dynamic_img_size") continue;
    bool size = false;
    for (const auto& [field, want] : timm_sizes<Cfg>()) size = size || k == field;
    if (size) continue;
    if (k == "global_pool") {
      if (v != "token" && v != "avg" && v != "")
        throw Error(where + ": global_pool " + v.dump() + " is not mae's (token, avg)");
      continue;
    }
    const auto it = same.find(k);
    if (it == same.end()) throw Error(where + ": model_args '" + k + "' is not an option of mae's ViT");
    if (!(v == it->second ||
          (v.is_number() && it->second.is_number() && v.template get<double>() == it->second.template get<double>())))
      throw Error(where + ": model_args " + k + " = " + v.dump() + " makes a network mae's ViT is not (" +
                  it->second.dump() + " here)");
  }
}

namespace detail {
// A classifier's description (keys::classifier) and class names for a head from another tool:
// `config` is the tool's name in place of the preset's ("timm", "hf").
inline void describe_head(std::map<std::string, std::string>& meta, const std::vector<Tensor>& tensors,
                          const char* tool, bool global_pool, const std::vector<std::string>& names) {
  for (const auto& t : tensors) {
    if (t.name != "head.weight" || t.shape.size() != 2 || t.shape[0] < 1) continue;
    meta[keys::classifier] = classifier_description(tool, static_cast<Index>(t.shape[0]), global_pool);
    if (static_cast<Index>(names.size()) == t.shape[0]) meta[keys::classes] = nlohmann::json(names).dump();
  }
}
// The class names of a config.json: timm's label_names (a list), HF's id2label ({"0": name}).
inline std::vector<std::string> label_names(const nlohmann::json& c) {
  std::vector<std::string> names;
  if (c.contains("label_names") && c["label_names"].is_array())
    for (const auto& n : c["label_names"]) names.push_back(n.is_string() ? n.get<std::string>() : n.dump());
  if (c.contains("id2label") && c["id2label"].is_object()) {
    names.assign(c["id2label"].size(), std::string());
    for (const auto& [k, v] : c["id2label"].items()) {
      const long long i = std::atoll(k.c_str());
      if (i < 0 || i >= static_cast<long long>(names.size())) return {};
      names[static_cast<std::size_t>(i)] = v.is_string() ? v.get<std::string>() : v.dump();
    }
  }
  return names;
}
// The normalization a config gives (timm's pretrained_cfg mean and std, HF's preprocessor's
// image_mean and image_std), into mae's metadata when it is one list of numbers per channel.
inline void keep_normalization(std::map<std::string, std::string>& meta, const nlohmann::json& c,
                               const char* mean_field, const char* std_field) {
  if (!c.is_object() || !c.contains(mean_field) || !c.contains(std_field)) return;
  const nlohmann::json &m = c[mean_field], &s = c[std_field];
  if (!m.is_array() || !s.is_array() || m.size() != s.size() || m.empty()) return;
  for (std::size_t i = 0; i < m.size(); ++i)
    if (!m[i].is_number() || !s[i].is_number() || !(s[i].get<double>() > 0)) return;
  meta[keys::normalize_mean] = m.dump();
  meta[keys::normalize_std] = s.dump();
}
}  // namespace detail

// The weights at `path` under the official names, with what mae's metadata would say:
// - mae's own file, or a converted official one: as it is;
// - a Hugging Face file (ViTMAEForPreTraining, ViTMAEModel, ViTForImageClassification): renamed
//   and its qkv joined in memory, its config.json kept under kHuggingFaceConfig;
// - a timm file with its config.json beside it: its config kept under kTimmConfig, a tensor
//   mae's ViT does not have refused by name.
// The normalization of the folder (timm's pretrained_cfg, HF's preprocessor_config.json) becomes
// the checkpoint's. A head (timm's head, HF's classifier) makes it a classifier
// (keys::classifier: "timm" or "hf" for the configuration, with its classes and pooling, and the
// config's class names). A folder stands for its model.safetensors.
inline safetensors::File open_weights(const std::string& path) {
  std::string file = path;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    file = (std::filesystem::path(path) / "model.safetensors").string();
    if (!std::filesystem::exists(file, ec))
      throw Error(path + ": a folder without model.safetensors (a Hugging Face or timm folder holds one)");
  }
  safetensors::File f(file);
  const std::filesystem::path config_path = std::filesystem::path(file).parent_path() / "config.json";
  nlohmann::json config;
  if (!f.metadata().count(keys::config) && std::filesystem::is_regular_file(config_path, ec)) {
    config = nlohmann::json::parse(read_file(config_path.string()), nullptr, false);
    if (config.is_discarded()) throw Error(config_path.string() + ": not JSON");
  }
  std::map<std::string, std::string> meta = f.metadata();
  if (is_hugging_face(f)) {
    if (!config.is_null()) meta[kHuggingFaceConfig] = config.dump();
    const std::filesystem::path pre = std::filesystem::path(file).parent_path() / "preprocessor_config.json";
    if (!f.metadata().count(keys::config) && std::filesystem::is_regular_file(pre, ec))
      detail::keep_normalization(meta, nlohmann::json::parse(read_file(pre.string()), nullptr, false), "image_mean",
                                 "image_std");
    const std::vector<Tensor> renamed = from_hugging_face(f);
    detail::describe_head(meta, renamed, "hf", /*global_pool=*/false, detail::label_names(config));
    return safetensors::File::from_bytes(file + " (Hugging Face names)", serialize(renamed, meta));
  }
  if (!config.is_object() || !config.contains("architecture")) return f;  // not timm's
  std::vector<Tensor> tensors;
  for (const auto& [name, e] : f.tensors()) {
    if (!is_timm_vit_name(name)) f.fail("tensor '" + name + "' is not one of mae's ViT (timm's model has more)");
    Tensor t{name, {}, {}};
    t.values = f.read<float>(name, &t.shape);
    tensors.push_back(std::move(t));
  }
  meta[kTimmConfig] = config.dump();
  if (config.contains("pretrained_cfg")) detail::keep_normalization(meta, config["pretrained_cfg"], "mean", "std");
  detail::describe_head(meta, tensors, "timm", f.contains("fc_norm.weight"), detail::label_names(config));
  return safetensors::File::from_bytes(file, serialize(tensors, meta));
}

namespace detail {
// preprocessor_config.json (ViTImageProcessor): resize to the model's size, bicubic, the
// normalization the model was trained with.
template <class Cfg>
nlohmann::json image_processor(const std::vector<double>& mean, const std::vector<double>& stddev) {
  return {{"image_processor_type", "ViTImageProcessor"},
          {"do_resize", true},
          {"size", {{"height", Cfg::img_size}, {"width", Cfg::img_size}}},
          {"resample", 3},
          {"do_rescale", true},
          {"rescale_factor", 1.0 / 255.0},
          {"do_normalize", true},
          {"image_mean", mean},
          {"image_std", stddev}};
}
}  // namespace detail

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
  write_file(dir + "/preprocessor_config.json", detail::image_processor<Cfg>(mean, stddev).dump(2) + "\n");
}

// timm's config.json for the configuration Cfg: architecture, num_classes, global_pool,
// model_args (the sizes; timm's create_model builds the network from them), pretrained_cfg (the
// input size and normalization) and, for a classifier, label_names.
template <class Cfg>
nlohmann::json timm_config(Index num_classes, const std::string& global_pool, const std::vector<double>& mean,
                           const std::vector<double>& stddev, const std::vector<std::string>& label_names = {}) {
  nlohmann::json args = {{"num_classes", num_classes}, {"global_pool", global_pool}};
  for (const auto& [field, v] : timm_sizes<Cfg>()) args[field] = v;
  nlohmann::json c = {{"architecture", "vit_base_patch16_224"},
                      {"num_classes", num_classes},
                      {"num_features", Cfg::embed_dim},
                      {"global_pool", global_pool},
                      {"model_args", args},
                      {"pretrained_cfg",
                       {{"input_size", {Cfg::in_chans, Cfg::img_size, Cfg::img_size}},
                        {"interpolation", "bicubic"},
                        {"crop_pct", Cfg::img_size <= 224 ? 0.875 : 1.0},
                        {"mean", mean},
                        {"std", stddev},
                        {"num_classes", num_classes}}}};
  if (!label_names.empty()) c["label_names"] = label_names;
  return c;
}

// timm's VisionTransformer holding an MAE's encoder (num_classes 0, the class token's output, as
// timm's `vit_base_patch16_224.mae`): model.safetensors with the encoder's official names (timm's
// own) and config.json. `model` is an MaskedAutoencoder or a VisionTransformer.
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
  write_file(dir + "/config.json", timm_config<Cfg>(0, "token", mean, stddev).dump(2) + "\n");
}

// A fine-tuned classifier (VisionTransformer) as timm's VisionTransformer: global_pool 'avg'
// (fc_norm of the patch-token mean, then head) or 'token' (norm, then head on the cls token),
// with its classes' names. timm's names are the official ones: the state dict as it is.
template <class Vit>
void save_timm_classifier(const Vit& model, const std::string& dir, const std::vector<double>& mean,
                          const std::vector<double>& stddev, const std::vector<std::string>& class_names) {
  using Cfg = typename Vit::Config;
  std::filesystem::create_directories(dir);
  write_file(dir + "/model.safetensors", safetensors::serialize(model.state_dict(), {{"format", "pt"}}));
  write_file(
      dir + "/config.json",
      timm_config<Cfg>(model.num_classes(), model.global_pool() ? "avg" : "token", mean, stddev, class_names).dump(2) +
          "\n");
}

// A fine-tuned classifier as Hugging Face's ViTForImageClassification (the normed cls token
// into the head): model.safetensors under HF's names, config.json (ViTConfig, id2label) and
// preprocessor_config.json. A classifier with global pooling (fc_norm of the patch-token mean)
// has no such form in HF's ViT, whose head always reads the cls token: refused, saying so.
template <class Vit>
void save_hugging_face_classifier(const Vit& model, const std::string& dir, const std::vector<double>& mean,
                                  const std::vector<double>& stddev, const std::vector<std::string>& class_names) {
  using Cfg = typename Vit::Config;
  if (model.global_pool())
    throw Error(dir +
                ": Hugging Face's ViTForImageClassification classifies the normed cls token; this classifier "
                "pools the patch tokens (fc_norm of their mean), which it cannot hold: export it to timm "
                "(--format timm, global_pool 'avg'), or fine-tune with --pool cls");
  std::filesystem::create_directories(dir);
  const safetensors::File ours = safetensors::File::from_bytes(dir, safetensors::serialize(model.state_dict(), {}));
  write_file(dir + "/model.safetensors", serialize(to_hugging_face(ours), {{"format", "pt"}}));
  nlohmann::json c = hugging_face_fields<Cfg>("ViTForImageClassification", "vit", /*with_decoder=*/false);
  nlohmann::json id2label = nlohmann::json::object(), label2id = nlohmann::json::object();
  for (std::size_t k = 0; k < class_names.size(); ++k) {
    id2label[std::to_string(k)] = class_names[k];
    label2id[class_names[k]] = k;
  }
  c["id2label"] = id2label, c["label2id"] = label2id;
  write_file(dir + "/config.json", c.dump(2) + "\n");
  write_file(dir + "/preprocessor_config.json", detail::image_processor<Cfg>(mean, stddev).dump(2) + "\n");
}

}  // namespace mae::interchange

#endif  // MAE_IO_INTERCHANGE_HPP
