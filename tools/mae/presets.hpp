// The model configurations compiled into the `mae` program: one entry per preset, holding its
// shape and the subcommands instantiated for it (tools/CMakeLists.txt generates one
// translation unit per preset, so they compile in parallel).
#pragma once

#include "args.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace mae_tool {

struct Preset {
  std::string name, config, description;
  int img_size, patch_size, in_chans, embed_dim, depth, num_heads, decoder_embed_dim, decoder_depth, decoder_num_heads;
  std::int64_t parameters;  // of the MAE (encoder + decoder), the fixed position tables excluded
  int (*pretrain)(PretrainArgs);
  int (*finetune)(FinetuneArgs);
  int (*probe)(ProbeArgs);
  int (*eval)(const EvalArgs&);
  int (*predict)(const PredictArgs&);
  int (*extract)(const ExtractArgs&);
  int (*knn)(const KnnArgs&);
  int (*reconstruct)(const ReconstructArgs&);
  int (*export_model)(const ExportArgs&);
  int (*attention)(const AttentionArgs&);
};

// In the order `mae presets` lists them.
const std::vector<Preset>& presets();

}  // namespace mae_tool
