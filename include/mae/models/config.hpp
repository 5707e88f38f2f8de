// mae/models/config.hpp — the compile-time model configuration and the presets.
//
// A model is a type: every size is a template parameter, and impossible configurations stop
// the build with a message (class-scope static_asserts, which fire as soon as the model
// type is used).
#ifndef MAE_MODELS_CONFIG_HPP
#define MAE_MODELS_CONFIG_HPP

#include <cstdint>
#include <string>
#include <type_traits>

namespace mae {

template <int ImgSize, int PatchSize, int InChans, int EmbedDim, int Depth, int NumHeads, int DecoderEmbedDim,
          int DecoderDepth, int DecoderNumHeads, int MlpRatio = 4, class Scalar_ = float>
struct Config {
  using Scalar = Scalar_;
  static constexpr int img_size = ImgSize;
  static constexpr int patch_size = PatchSize;
  static constexpr int in_chans = InChans;
  static constexpr int embed_dim = EmbedDim;  // D
  static constexpr int depth = Depth;
  static constexpr int num_heads = NumHeads;
  static constexpr int decoder_embed_dim = DecoderEmbedDim;  // D'
  static constexpr int decoder_depth = DecoderDepth;
  static constexpr int decoder_num_heads = DecoderNumHeads;
  static constexpr int mlp_ratio = MlpRatio;

  static_assert(std::is_same_v<Scalar_, float> || std::is_same_v<Scalar_, double>,
                "mae::Config: the scalar type must be float or double");
  static_assert(PatchSize > 0 && ImgSize > 0, "mae::Config: image and patch sizes must be positive");
  static_assert(ImgSize % PatchSize == 0, "mae::Config: the image size must be a multiple of the patch size");
  static_assert(InChans > 0, "mae::Config: the image needs at least one channel");
  static_assert(NumHeads > 0 && EmbedDim % NumHeads == 0,
                "mae::Config: the embedding width must be divisible by the number of heads");
  static_assert(DecoderNumHeads > 0 && DecoderEmbedDim % DecoderNumHeads == 0,
                "mae::Config: the decoder width must be divisible by the number of decoder heads");
  static_assert(EmbedDim > 0 && EmbedDim % 4 == 0,
                "mae::Config: the embedding width must be divisible by 4 (2-D sin-cos position table)");
  static_assert(DecoderEmbedDim > 0 && DecoderEmbedDim % 4 == 0,
                "mae::Config: the decoder width must be divisible by 4 (2-D sin-cos position table)");
  static_assert(Depth >= 1 && DecoderDepth >= 1, "mae::Config: encoder and decoder need at least one block");
  static_assert(MlpRatio >= 1, "mae::Config: the MLP ratio must be at least 1");

  static constexpr int grid = ImgSize / PatchSize;                   // G patches a side
  static constexpr int num_patches = grid * grid;                    // L
  static constexpr int patch_dim = PatchSize * PatchSize * InChans;  // p*p*C
  static constexpr int head_dim = EmbedDim / NumHeads;
  static constexpr int decoder_head_dim = DecoderEmbedDim / DecoderNumHeads;
  static constexpr int mlp_hidden = EmbedDim * MlpRatio;
  static constexpr int decoder_mlp_hidden = DecoderEmbedDim * MlpRatio;

  // The same model with another scalar type (double for gradient checks).
  template <class S>
  using with_scalar = Config<ImgSize, PatchSize, InChans, EmbedDim, Depth, NumHeads, DecoderEmbedDim, DecoderDepth,
                             DecoderNumHeads, MlpRatio, S>;

  // Trainable parameters (the fixed position tables excluded), as in the reference table.
  static constexpr std::int64_t block_params(std::int64_t d, std::int64_t hidden) {
    return 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (hidden * d + hidden) + (d * hidden + d);
  }
  static constexpr std::int64_t num_parameters() {
    const std::int64_t D = EmbedDim, Dd = DecoderEmbedDim, P = patch_dim;
    return D                                                               // cls_token
           + D * InChans * PatchSize * PatchSize + D                       // patch_embed.proj
           + Depth * block_params(D, mlp_hidden) + 2 * D                   // blocks, norm
           + D * Dd + Dd + Dd                                              // decoder_embed, mask_token
           + DecoderDepth * block_params(Dd, decoder_mlp_hidden) + 2 * Dd  // decoder blocks, norm
           + Dd * P + P;                                                   // decoder_pred
  }

  // A readable identity, stored in checkpoints and compared on load.
  static std::string name() {
    return "img" + std::to_string(ImgSize) + "_patch" + std::to_string(PatchSize) + "_chans" + std::to_string(InChans) +
           "_enc" + std::to_string(EmbedDim) + "d" + std::to_string(Depth) + "h" + std::to_string(NumHeads) + "_dec" +
           std::to_string(DecoderEmbedDim) + "d" + std::to_string(DecoderDepth) + "h" +
           std::to_string(DecoderNumHeads) + "_mlp" + std::to_string(MlpRatio);
  }
};

// Presets. Each is a configuration template over the scalar type; the model aliases for
// float are in masked_autoencoder.hpp (mae::mae_vit_base_patch16_dec512d8b, ...).
namespace presets {
// The official models (image 224, decoder 512 wide, depth 8, 16 heads).
template <class S = float>
using vit_base_patch16_dec512d8b = Config<224, 16, 3, 768, 12, 12, 512, 8, 16, 4, S>;
template <class S = float>
using vit_large_patch16_dec512d8b = Config<224, 16, 3, 1024, 24, 16, 512, 8, 16, 4, S>;
template <class S = float>
using vit_huge_patch14_dec512d8b = Config<224, 14, 3, 1280, 32, 16, 512, 8, 16, 4, S>;
// Toy models: 28x28 grayscale (Fashion-MNIST), 32x32 RGB (CIFAR-like), ViT-Tiny-like at 224.
template <class S = float>
using vit_tiny_28x28_gray = Config<28, 4, 1, 192, 6, 3, 128, 2, 4, 4, S>;
template <class S = float>
using vit_tiny_32x32_rgb = Config<32, 4, 3, 192, 12, 3, 128, 4, 4, 4, S>;
template <class S = float>
using vit_tiny_patch16_224 = Config<224, 16, 3, 192, 12, 3, 128, 4, 4, 4, S>;
// Small real datasets (STL-10 at 96, downsampled ImageNet / Tiny-ImageNet at 64): patch 8,
// so the grid (8 x 8, 12 x 12) stays short enough for a CPU.
template <class S = float>
using vit_tiny_64x64_rgb = Config<64, 8, 3, 192, 12, 3, 128, 4, 4, 4, S>;
template <class S = float>
using vit_tiny_96x96_rgb = Config<96, 8, 3, 192, 12, 3, 128, 4, 4, 4, S>;
// ViT-B of the official checkpoints at a smaller resolution (8 x 8 patches of 16): where
// the released weights continue, their pos_embed interpolated for the classifier.
template <class S = float>
using vit_base_patch16_128 = Config<128, 16, 3, 768, 12, 12, 512, 8, 16, 4, S>;
}  // namespace presets

}  // namespace mae

#endif  // MAE_MODELS_CONFIG_HPP
