// mae/models/encoder.hpp — the ViT encoder that the MAE and the classifier share: patch embedding,
// cls token, position table and blocks, with the official state-dict names.
//
//   x_patch = patch_embed(imgs)[ids]                          (N, K, D)  only the kept patches
//   x[0]    = [cls_token + pos[0], x_patch + pos[1 + ids]]    (N, 1+K, D)
//   x[b+1]  = blocks[b](x[b])                                 (N, 1+K, D)
//
// ids are the masking's ids_keep (N, L; the first K of each row) or null for every patch in
// order (K = L). The final norm is the models' own: the MAE normalizes every token, the
// classifier the pooled feature (fc_norm), and the position table is fixed in the MAE and a
// parameter of the classifier, so both stay with the models.
#ifndef MAE_MODELS_ENCODER_HPP
#define MAE_MODELS_ENCODER_HPP

#include "../core/common.hpp"
#include "../core/rng.hpp"
#include "../layers/block.hpp"
#include "../layers/linear.hpp"
#include "../layers/patch.hpp"
#include "../layers/tokens.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mae {

template <class Cfg>
struct Encoder {
  using S = typename Cfg::Scalar;
  static constexpr Index C = Cfg::in_chans, p = Cfg::patch_size, L = Cfg::num_patches, D = Cfg::embed_dim;
  static constexpr Index kDepth = Cfg::depth, kPatchDim = C * p * p;
  static constexpr BlockShape block_shape{Cfg::embed_dim, Cfg::num_heads, Cfg::mlp_hidden};
  static constexpr PatchShape patch_shape{Cfg::in_chans, Cfg::patch_size, Cfg::grid};

  struct Params {
    S* cls_token = nullptr;  // (1, 1, D)
    PatchEmbedParams<S> patch_embed;
    std::vector<BlockParams<S>> blocks = std::vector<BlockParams<S>>(kDepth);
  };

  // f(name, shape, S*&) for cls_token, then *pos_embed (if given: the classifier's trainable
  // table), then patch_embed, then the blocks: the order of the official state dicts.
  template <class F>
  static void visit(Params& w, F&& f, S** pos_embed = nullptr) {
    f("cls_token", {1, 1, D}, w.cls_token);
    if (pos_embed) f("pos_embed", {1, 1 + L, D}, *pos_embed);
    f("patch_embed.proj.weight", {D, C, p, p}, w.patch_embed.weight);
    f("patch_embed.proj.bias", {D}, w.patch_embed.bias);
    for (Index i = 0; i < kDepth; ++i) visit_block(w.blocks[i], "blocks." + std::to_string(i) + ".", block_shape, f);
  }
  static bool is_encoder_tensor(const std::string& name) {
    return name == "cls_token" || name == "pos_embed" || name.rfind("patch_embed.", 0) == 0 ||
           name.rfind("blocks.", 0) == 0;
  }

  // What forward keeps for backward; grown on demand, never shrunk.
  struct Activations {
    std::vector<S> cols, x_patch;  // (N, K, C*p*p), (N, K, D)
    StackActivations<S> stack;     // x[0..depth] (N, 1+K, D) and the block caches
    void reserve(Index N, Index K) {
      ensure(cols, N * K * kPatchDim), ensure(x_patch, N * K * D);
      stack.reserve(kDepth, N, 1 + K, D);
    }
    const S* output() const { return stack.output(); }  // x[depth]
  };
  // Gradient buffers of backward.
  struct Scratch {
    BlockScratch<S> blocks;
    std::vector<S> d_a, d_b, d_x_patch;
    void reserve(Index N, Index K) {
      ensure(d_a, N * (1 + K) * D), ensure(d_b, N * (1 + K) * D), ensure(d_x_patch, N * K * D);
    }
  };

  // a.output() (N, 1+K, D) from imgs (N, C, H, W); keep: drop-path scales (block.hpp), or null.
  // shape: block_shape in the model's precision (every product, the patch embedding's too).
  static void forward(Activations& a, const Params& w, const S* pos, const S* imgs, Index N, const std::int64_t* ids,
                      Index K, const S* const* keep = nullptr, const BlockShape& shape = block_shape) {
    a.reserve(N, K);
    // x_patch = im2col(imgs)[ids] W^T + b: the reference embeds every patch and keeps the rows
    // ids_keep; embedding the kept patches only gives the same rows for a fraction of the work
    im2col<S, false>(a.cols.data(), imgs, N, patch_shape, ids, ids ? K : 0);
    linear_forward(a.x_patch.data(), a.cols.data(), w.patch_embed.weight, w.patch_embed.bias, N * K, kPatchDim, D,
                   LinearForwardOptions<S>::in(shape.precision));
    // x[0] = [cls_token + pos[0], x_patch + pos[1 + ids]]
    embed_tokens_forward(a.stack.input(), a.x_patch.data(), w.cls_token, pos, ids, N, K, L, D);
    // x[b+1] = blocks[b](x[b])
    stack_forward(a.stack, w.blocks, N, 1 + K, shape, keep);
  }

  // g += the gradient of <x[depth], dx_out> through forward; dpos (1+L, D) += too unless null.
  // block_done(b), if given: block b's gradients are final (stack_backward).
  static void backward(Params& g, S* dpos, Scratch& s, const S* dx_out, const Activations& a, const Params& w, Index N,
                       const std::int64_t* ids, Index K, const S* const* keep = nullptr,
                       const BlockShape& shape = block_shape, const std::function<void(Index b)>& block_done = {}) {
    s.reserve(N, K);
    // forward: x[b+1] = blocks[b](x[b])
    const S* dx0 = stack_backward(g.blocks, s.blocks, s.d_a.data(), s.d_b.data(), dx_out, a.stack, w.blocks, N, 1 + K,
                                  shape, keep, block_done);
    // forward: x[0] = [cls_token + pos[0], x_patch + pos[1 + ids]]
    embed_tokens_backward(s.d_x_patch.data(), g.cls_token, dpos, dx0, ids, N, K, L, D, Grad::assign);
    // forward: x_patch = cols W^T + b (the images get no gradient)
    linear_backward<S>(nullptr, g.patch_embed.weight, g.patch_embed.bias, s.d_x_patch.data(), a.cols.data(),
                       w.patch_embed.weight, N * K, kPatchDim, D,
                       LinearBackwardOptions::in(shape.precision));
  }
};

}  // namespace mae

#endif  // MAE_MODELS_ENCODER_HPP
