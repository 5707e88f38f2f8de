// mae/mae.hpp — the library: #include <mae/mae.hpp> (CMake target mae::mae: Eigen,
// nlohmann-json and OpenMP, nothing else).
//
// Included: the models (model.hpp: MaskedAutoencoder and the presets; classifier.hpp:
// VisionTransformer, the fine-tuning and probing classifier; linear_probe.hpp), their layers
// (linear, layernorm, attention, mlp, block, patch, tokens, encoder, masking, loss,
// cross_entropy, pos_embed), optimizers (optim.hpp), weights I/O (safetensors.hpp), and the
// training loops (train.hpp, finetune.hpp, with data/loader.hpp that feeds them).
//
// Not included: <mae/data.hpp> (datasets, image folders, figures: it needs zlib and stb,
// through the mae::data target), and the kernels' internals: kernels/ holds the tuned
// products behind linear.hpp and attention.hpp (kernels/reference.hpp has their plain
// versions, for tests).
#ifndef MAE_MAE_HPP
#define MAE_MAE_HPP

#include "attention.hpp"
#include "block.hpp"
#include "checkpoint.hpp"
#include "classifier.hpp"
#include "common.hpp"
#include "config.hpp"
#include "cross_entropy.hpp"
#include "data/loader.hpp"
#include "encoder.hpp"
#include "finetune.hpp"
#include "inference.hpp"
#include "layernorm.hpp"
#include "linear.hpp"
#include "linear_probe.hpp"
#include "loss.hpp"
#include "masking.hpp"
#include "metrics.hpp"
#include "mlp.hpp"
#include "model.hpp"
#include "optim.hpp"
#include "params.hpp"
#include "patch.hpp"
#include "pos_embed.hpp"
#include "progress.hpp"
#include "rng.hpp"
#include "safetensors.hpp"
#include "tokens.hpp"
#include "train.hpp"
#include "training_loop.hpp"

#endif  // MAE_MAE_HPP
