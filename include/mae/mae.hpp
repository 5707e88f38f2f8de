// mae/mae.hpp — the library: #include <mae/mae.hpp> (CMake target mae::mae: Eigen,
// nlohmann-json and OpenMP, nothing else). Its levels, each including only those above it:
//
//   core/       Index and Error, the random generator, tensor stores, image batches
//   kernels/    the tuned products (one blocked driver, a file per operand format), SIMD
//               helpers, and their plain references (kernels/reference.hpp, for tests)
//   layers/     forward/backward pairs: linear, layernorm, attention, mlp, block, patch,
//               pos_embed, tokens, masking, loss, cross_entropy
//   io/         safetensors files, the run's checkpoint keys, and other tools' layouts
//               (Hugging Face, timm: io/interchange.hpp)
//   models/     the configurations and presets, the encoder, the MaskedAutoencoder, the
//               VisionTransformer classifier
//   data/       what feeds training: the dataset interface, the batch loader and its
//               augmentations (RandAugment, random erasing, mixup / cutmix)
//   training/   AdamW and LARS, the loop, pretraining, fine-tuning, the linear probe
//   inference/  a trained model at work: normalization, evaluation, prediction, features,
//               metrics, the k-NN vote and attention maps
//
// Not included: <mae/data.hpp> (datasets/ and figures/: image files, Fashion-MNIST, figures;
// they need zlib, libspng, libjpeg-turbo and stb, through the mae::data target), and
// training/distributed.hpp (MPI, through mae::mpi).
#ifndef MAE_MAE_HPP
#define MAE_MAE_HPP

#include "core/common.hpp"
#include "core/images.hpp"
#include "core/params.hpp"
#include "core/rng.hpp"

#include "layers/attention.hpp"
#include "layers/block.hpp"
#include "layers/cross_entropy.hpp"
#include "layers/layernorm.hpp"
#include "layers/linear.hpp"
#include "layers/loss.hpp"
#include "layers/masking.hpp"
#include "layers/mlp.hpp"
#include "layers/patch.hpp"
#include "layers/pos_embed.hpp"
#include "layers/tokens.hpp"

#include "io/checkpoint.hpp"
#include "io/checkpoint_series.hpp"
#include "io/files.hpp"
#include "io/interchange.hpp"
#include "io/run_directory.hpp"
#include "io/safetensors.hpp"

#include "models/classifier.hpp"
#include "models/config.hpp"
#include "models/encoder.hpp"
#include "models/masked_autoencoder.hpp"

#include "data/erasing.hpp"
#include "data/loader.hpp"
#include "data/mixup.hpp"
#include "data/rand_augment.hpp"

#include "training/finetune.hpp"
#include "training/linear_probe.hpp"
#include "training/optim.hpp"
#include "training/pretrain.hpp"
#include "training/progress.hpp"
#include "training/training_loop.hpp"

#include "inference/attention_maps.hpp"
#include "inference/classify.hpp"
#include "inference/features.hpp"
#include "inference/metrics.hpp"
#include "inference/normalization.hpp"

#endif  // MAE_MAE_HPP
