// mae export: a checkpoint in another tool's layout.
// - an MAE: hf, a ViTMAEForPreTraining folder (Hugging Face's names, config.json,
//   preprocessor_config.json with the run's normalization); timm, the encoder as timm's
//   VisionTransformer holds it (num_classes 0).
// - a fine-tuned classifier: timm, VisionTransformer with global_pool 'avg' (fc_norm + head) or
//   'token'; hf, ViTForImageClassification (cls-token classifiers only: HF's ViT has no pooling).
// - a linear probe: its BatchNorm folded into the head of its encoder, then as a classifier.
#pragma once

#include "common.hpp"

#include <cstdio>
#include <filesystem>
#include <optional>

namespace mae_tool {

namespace detail {
// The statistics a checkpoint's model was trained with, else ImageNet's (weights from elsewhere).
template <class Cfg>
mae::Normalization export_normalization(const mae::Metadata& meta, const std::string& path) {
  if (const auto saved = mae::read_normalization(meta, path, Cfg::in_chans)) return *saved;
  return mae::imagenet_normalization(Cfg::in_chans);
}
}  // namespace detail

template <class Cfg>
int export_model(const ExportArgs& a) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(a.out, ec) && !(fs::is_directory(a.out, ec) && fs::is_empty(a.out, ec)) && !a.overwrite)
    throw mae::Error("--out '" + a.out + "' exists and is not empty: give --overwrite to replace its files");
  const bool hf = a.format == "hf";
  const std::string probe_from = a.encoder.empty() ? probe_encoder(a.checkpoint) : a.encoder;
  const auto meta = metadata_of(a.checkpoint);
  std::string what;
  mae::Normalization n;
  if (meta.count(mae::keys::classifier) || !probe_from.empty() || meta.count(mae::keys::features)) {
    using Vit = mae::VisionTransformer<Cfg>;
    std::unique_ptr<Vit> model;
    std::vector<std::string> classes;
    if (meta.count(mae::keys::classifier)) {  // a fine-tuned classifier
      mae::LoadedClassifier<Cfg> c = mae::load_classifier<Cfg>(a.checkpoint);
      model = std::move(c.model), classes = c.info.class_names;
      n = detail::export_normalization<Cfg>(c.metadata, a.checkpoint);
      what = "classifier " + a.checkpoint;
    } else {  // a linear probe: the encoder's features, BatchNorm folded into the head
      const mae::safetensors::File f(a.checkpoint);
      const std::string features = meta.count(mae::keys::features) ? meta.at(mae::keys::features) : "";
      const bool cls = features.rfind("cls token + norm, ", 0) == 0;
      const bool mean = features.rfind("mean of patch tokens + fc_norm, ", 0) == 0;
      if (!cls && !mean)
        throw mae::Error(a.checkpoint + ": a probe of '" + features +
                         "'; only a probe of the normed cls token or of fc_norm(mean of patch tokens) is a ViT head");
      if (probe_from.empty())
        throw mae::Error(a.checkpoint + ": a probe of a random encoder; give the --encoder it was trained on");
      const mae::FoldedProbe p = mae::read_folded_probe(f);
      if (p.features != Cfg::embed_dim)
        throw mae::Error(a.checkpoint + ": a probe of " + std::to_string(p.features) + " features; " + Cfg::name() +
                         " gives " + std::to_string(Cfg::embed_dim));
      typename Vit::Options o;
      o.num_classes = p.classes, o.global_pool = mean, o.drop_path = 0;
      model = std::make_unique<Vit>(o);
      model->load_encoder(probe_from);
      auto& w = model->parameters();
      std::copy(p.weight.begin(), p.weight.end(), w.ptr("head.weight"));
      std::copy(p.bias.begin(), p.bias.end(), w.ptr("head.bias"));
      classes = mae::read_classes(meta, a.checkpoint);
      if (static_cast<Index>(classes.size()) != p.classes) {
        classes.clear();
        for (Index k = 0; k < p.classes; ++k) classes.push_back(std::to_string(k));
      }
      n = detail::export_normalization<Cfg>(metadata_of(probe_from), probe_from);
      what = "linear probe " + a.checkpoint + " on " + probe_from + " (BatchNorm folded into the head)";
    }
    if (hf)
      mae::interchange::save_hugging_face_classifier(*model, a.out, n.mean, n.stddev, classes);
    else
      mae::interchange::save_timm_classifier(*model, a.out, n.mean, n.stddev, classes);
    what =
        (hf ? "ViTForImageClassification"
            : std::string("timm VisionTransformer (global_pool '") + (model->global_pool() ? "avg" : "token") + "')") +
        " of the " + what + ", " + std::to_string(model->num_classes()) + " classes";
  } else {  // an MAE
    using Model = mae::MaskedAutoencoder<Cfg>;
    const bool norm_pix = mae::metadata_value(meta, mae::keys::norm_pix_loss) == std::optional<std::string>("1");
    Model model(typename Model::Options{norm_pix, 0});
    model.load(a.checkpoint, /*strict=*/false);  // a training checkpoint's optimizer state is ignored
    n = detail::export_normalization<Cfg>(meta, a.checkpoint);
    if (hf)
      mae::interchange::save_hugging_face(model, a.out, n.mean, n.stddev, norm_pix);
    else
      mae::interchange::save_timm(model, a.out, n.mean, n.stddev);
    what = std::string(hf ? "ViTMAEForPreTraining" : "timm VisionTransformer (encoder, num_classes 0)") + " of " +
           a.checkpoint;
  }
  std::printf("%s: %s, %s, mean", a.out.c_str(), what.c_str(), Cfg::name().c_str());
  for (double m : n.mean) std::printf(" %.4f", m);
  std::printf(", std");
  for (double s : n.stddev) std::printf(" %.4f", s);
  std::printf("\n");
  return 0;
}

}  // namespace mae_tool
