// mae export: an MAE checkpoint in another tool's layout. hf: a ViTMAEForPreTraining folder
// (Hugging Face's names, config.json, preprocessor_config.json with the run's normalization);
// timm: the encoder as timm's VisionTransformer holds it (num_classes 0: config.json and
// model.safetensors, the official names).
#pragma once

#include "common.hpp"

#include <cstdio>
#include <filesystem>
#include <optional>

namespace mae_tool {

template <class Cfg>
int export_model(const ExportArgs& a) {
  using Model = mae::MaskedAutoencoder<Cfg>;
  namespace fs = std::filesystem;
  const auto meta = metadata_of(a.checkpoint);
  const bool norm_pix = mae::metadata_value(meta, mae::keys::norm_pix_loss) == std::optional<std::string>("1");
  Model model(typename Model::Options{norm_pix, 0});
  model.load(a.checkpoint, /*strict=*/false);  // a training checkpoint's optimizer state is ignored
  std::error_code ec;
  if (fs::exists(a.out, ec) && !(fs::is_directory(a.out, ec) && fs::is_empty(a.out, ec)) && !a.overwrite)
    throw mae::Error("--out '" + a.out + "' exists and is not empty: give --overwrite to replace its files");
  // the statistics the model was trained with, else ImageNet's (weights from elsewhere)
  mae::Normalization n;
  if (const auto saved = mae::read_normalization(meta, a.checkpoint, Cfg::in_chans))
    n = *saved;
  else if (Cfg::in_chans == 1)
    n.mean = {0.449}, n.stddev = {0.226};
  else
    n.mean = {0.485, 0.456, 0.406}, n.stddev = {0.229, 0.224, 0.225};
  if (a.format == "hf") {
    mae::interchange::save_hugging_face(model, a.out, n.mean, n.stddev, norm_pix);
  } else {
    mae::interchange::save_timm(model, a.out, n.mean, n.stddev);
  }
  std::printf("%s: %s of %s (%s), mean", a.out.c_str(),
              a.format == "hf" ? "ViTMAEForPreTraining" : "timm VisionTransformer (encoder, num_classes 0)",
              a.checkpoint.c_str(), Cfg::name().c_str());
  for (double m : n.mean) std::printf(" %.4f", m);
  std::printf(", std");
  for (double s : n.stddev) std::printf(" %.4f", s);
  std::printf("\n");
  return 0;
}

}  // namespace mae_tool
