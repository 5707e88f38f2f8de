// mae/model.hpp — the Masked Autoencoder (MaskedAutoencoderViT of models_mae.py).
//
//   encoder:  x = patch_embed(imgs) + pos_embed[1:]          (N, L, D)
//             x = x[ids_keep]                                 (N, K, D) random masking
//             (computed as patch_embed of the kept patches only: the same rows, a quarter of the work)
//             x = [cls_token + pos_embed[0], x]               (N, 1+K, D)
//             x = norm(blocks(x))                             latent (N, 1+K, D)
//   decoder:  y = decoder_embed(latent)                       (N, 1+K, D')
//             y = [y_cls, unshuffle([y_vis, mask_token...])]  (N, 1+L, D')
//             y = decoder_norm(decoder_blocks(y + decoder_pos_embed))
//             pred = decoder_pred(y)[:, 1:]                   (N, L, p*p*C)
//   loss:     masked MSE against patchify(imgs) (loss.hpp)
#ifndef MAE_MODEL_HPP
#define MAE_MODEL_HPP

#include "block.hpp"
#include "common.hpp"
#include "config.hpp"
#include "layernorm.hpp"
#include "linear.hpp"
#include "loss.hpp"
#include "masking.hpp"
#include "params.hpp"
#include "patch.hpp"
#include "pos_embed.hpp"
#include "rng.hpp"
#include "safetensors.hpp"

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mae {

// A batch of images (N, C, H, W), contiguous, row-major (as a PyTorch tensor).
template <class S>
struct ImageBatch {
  const S* data = nullptr;
  Index n = 0, channels = 0, height = 0, width = 0;
};

template <class S>
inline ImageBatch<S> images(const S* data, Index n, Index channels, Index height, Index width) {
  return ImageBatch<S>{data, n, channels, height, width};
}

template <class Cfg>
class MaskedAutoencoder {
 public:
  using Config = Cfg;
  using Scalar = typename Cfg::Scalar;
  using S = Scalar;

  static constexpr Index C = Cfg::in_chans, p = Cfg::patch_size, G = Cfg::grid, L = Cfg::num_patches;
  static constexpr Index D = Cfg::embed_dim, Dd = Cfg::decoder_embed_dim, P = Cfg::patch_dim;
  static constexpr Index kDepth = Cfg::depth, kDecoderDepth = Cfg::decoder_depth;
  static constexpr BlockShape encoder_block{Cfg::embed_dim, Cfg::num_heads, Cfg::mlp_hidden};
  static constexpr BlockShape decoder_block{Cfg::decoder_embed_dim, Cfg::decoder_num_heads, Cfg::decoder_mlp_hidden};
  static constexpr PatchShape patch_shape{Cfg::in_chans, Cfg::patch_size, Cfg::grid};

  // The trainable tensors as raw pointers into a TensorStore (parameters or gradients).
  struct Params {
    S* cls_token = nullptr;  // (1, 1, D)
    PatchEmbedParams<S> patch_embed;
    std::vector<BlockParams<S>> blocks = std::vector<BlockParams<S>>(kDepth);
    LayerNormParams<S> norm;
    LinearParams<S> decoder_embed;  // (D', D)
    S* mask_token = nullptr;        // (1, 1, D')
    std::vector<BlockParams<S>> decoder_blocks = std::vector<BlockParams<S>>(kDecoderDepth);
    LayerNormParams<S> decoder_norm;
    LinearParams<S> decoder_pred;  // (p*p*C, D')
  };

  // f(name, shape, S*&) for every trainable tensor, with the official state-dict names.
  template <class F>
  static void visit(Params& w, F&& f) {
    f("cls_token", {1, 1, D}, w.cls_token);
    f("patch_embed.proj.weight", {D, C, p, p}, w.patch_embed.weight);
    f("patch_embed.proj.bias", {D}, w.patch_embed.bias);
    for (Index i = 0; i < kDepth; ++i) visit_block(w.blocks[i], "blocks." + std::to_string(i) + ".", encoder_block, f);
    f("norm.weight", {D}, w.norm.weight);
    f("norm.bias", {D}, w.norm.bias);
    f("decoder_embed.weight", {Dd, D}, w.decoder_embed.weight);
    f("decoder_embed.bias", {Dd}, w.decoder_embed.bias);
    f("mask_token", {1, 1, Dd}, w.mask_token);
    for (Index i = 0; i < kDecoderDepth; ++i)
      visit_block(w.decoder_blocks[i], "decoder_blocks." + std::to_string(i) + ".", decoder_block, f);
    f("decoder_norm.weight", {Dd}, w.decoder_norm.weight);
    f("decoder_norm.bias", {Dd}, w.decoder_norm.bias);
    f("decoder_pred.weight", {P, Dd}, w.decoder_pred.weight);
    f("decoder_pred.bias", {P}, w.decoder_pred.bias);
  }

  struct Options {
    bool norm_pix_loss = false;
    std::uint64_t seed = 0;  // initialization and the default masking noise
  };

  explicit MaskedAutoencoder(Options opt = Options{}) : opt_(opt), rng_(opt.seed) {
    params_.build([this](auto&& f) { visit(w_, f); });
    grads_.build([this](auto&& f) { visit(g_, f); });
    pos_embed_.resize(static_cast<std::size_t>((1 + L) * D));
    decoder_pos_embed_.resize(static_cast<std::size_t>((1 + L) * Dd));
    sincos_pos_embed_2d(pos_embed_.data(), D, G);
    sincos_pos_embed_2d(decoder_pos_embed_.data(), Dd, G);
    initialize(opt.seed);
  }
  MaskedAutoencoder(const MaskedAutoencoder&) = delete;  // Params point into our own stores
  MaskedAutoencoder& operator=(const MaskedAutoencoder&) = delete;

  // --- parameters ------------------------------------------------------------------------
  TensorStore<S>& parameters() { return params_; }
  const TensorStore<S>& parameters() const { return params_; }
  // Gradients are zeroed lazily: zero_grad() only marks them, and the next backward assigns
  // each gradient instead of adding to it (no pass over memory to clear them first: a few
  // percent of a ViT-Base step). Reading them before that backward clears them then.
  TensorStore<S>& gradients() { return settled_grads(); }
  const TensorStore<S>& gradients() const { return settled_grads(); }
  Params& params() { return w_; }
  Params& grads() {
    settled_grads();
    return g_;
  }
  const S* pos_embed() const { return pos_embed_.data(); }                  // (1 + L, D)
  const S* decoder_pos_embed() const { return decoder_pos_embed_.data(); }  // (1 + L, D')
  bool norm_pix_loss() const { return opt_.norm_pix_loss; }
  Rng& rng() { return rng_; }

  // The reference initialization (initialize_weights in models_mae.py), from a seed.
  void initialize(std::uint64_t seed) {
    Rng r(seed);
    init_patch_embed(w_.patch_embed, patch_shape, D, r);
    for (Index i = 0; i < D; ++i) w_.cls_token[i] = static_cast<S>(0.02 * r.normal());
    for (Index i = 0; i < Dd; ++i) w_.mask_token[i] = static_cast<S>(0.02 * r.normal());
    for (auto& b : w_.blocks) init_block(b, encoder_block, r);
    init_layernorm(w_.norm, D);
    init_linear(w_.decoder_embed, Dd, D, r);
    for (auto& b : w_.decoder_blocks) init_block(b, decoder_block, r);
    init_layernorm(w_.decoder_norm, Dd);
    init_linear(w_.decoder_pred, P, Dd, r);
  }

  void zero_grad() { grads_zero_pending_ = true; }

  // --- training ----------------------------------------------------------------------------
  // Forward on a batch: returns the loss; pred(), mask() hold the rest. noise (N, L) decides
  // the masking (ascending noise = kept); without it, noise is drawn from the model's seeded
  // generator.
  S forward(const ImageBatch<S>& imgs, double mask_ratio = 0.75, const S* noise = nullptr) {
    check_images(imgs, "forward");
    const Index N = imgs.n, K = num_visible(L, mask_ratio);
    Workspace& ws = train_;
    ws.reserve(N, K);
    // --- masking noise and ids
    if (noise) {
      std::copy(noise, noise + N * L, ws.noise.begin());
    } else {
      for (Index i = 0; i < N * L; ++i) ws.noise[i] = static_cast<S>(rng_.uniform());
    }
    random_masking_ids(ws.ids_shuffle.data(), ws.ids_restore.data(), ws.mask.data(), ws.noise.data(), N, L, K);
    encode(ws, imgs.data, N, K);
    decode(ws, N, K);
    // --- loss: target = patchify(imgs), normalized per patch with norm_pix_loss
    patchify(ws.target.data(), imgs.data, N, patch_shape);
    if (opt_.norm_pix_loss) normalize_patches(ws.target.data(), N * L, P);
    ws.loss = masked_mse_forward(ws.loss_nl.data(), ws.pred.data(), ws.target.data(), ws.mask.data(), N * L, P);
    has_forward_ = true;
    return ws.loss;
  }

  // Accumulate (+=) the gradient of dloss * loss into gradients(). The forward caches are
  // left untouched (backward may run twice). Call zero_grad() once per optimizer step.
  void backward(S dloss = S(1)) {
    if (!has_forward_) throw Error("backward() needs a forward() first");
    Workspace& ws = train_;
    const Index N = ws.N, K = ws.K, T = 1 + K, Td = 1 + L;
    ws.reserve_backward(N, K);
    Params& g = g_;
    const Grad pm = grads_zero_pending_ ? Grad::overwrite : Grad::accumulate;  // for every parameter gradient
    // forward: loss = masked_mse(pred, target)
    zero(ws.d_pred_full.data(), N * Td * P);
    zero(ws.d_pred.data(), N * L * P);
    masked_mse_backward(ws.d_pred.data(), ws.pred.data(), ws.target.data(), ws.mask.data(), N * L, P, dloss);
    for (Index n = 0; n < N; ++n)  // forward: pred = pred_full[:, 1:]
      std::copy(ws.d_pred.data() + n * L * P, ws.d_pred.data() + (n + 1) * L * P, ws.d_pred_full.data() + (n * Td + 1) * P);
    // forward: pred_full = decoder_pred(dec_normed)
    linear_backward(ws.d_dec_normed.data(), g.decoder_pred.weight, g.decoder_pred.bias, ws.d_pred_full.data(),
                    ws.dec_normed.data(), w_.decoder_pred.weight, N * Td, Dd, P, Grad::overwrite, NoChunkWork{}, pm);
    // forward: dec_normed = decoder_norm(dec_x[depth])
    S* dcur = ws.d_dec_a.data();
    S* dprev = ws.d_dec_b.data();
    zero(dcur, N * Td * Dd);
    layernorm_backward(dcur, g.decoder_norm.weight, g.decoder_norm.bias, ws.d_dec_normed.data(),
                       ws.dec_x[kDecoderDepth].data(), w_.decoder_norm.weight, ws.dec_norm_mean.data(),
                       ws.dec_norm_rstd.data(), N * Td, Dd, pm);
    // forward: dec_x[b+1] = decoder_blocks[b](dec_x[b])
    for (Index b = kDecoderDepth - 1; b >= 0; --b) {
      block_backward(dprev, g.decoder_blocks[b], ws.dec_scratch, dcur, ws.dec_x[b].data(), ws.dec_cache[b],
                     w_.decoder_blocks[b], N, Td, decoder_block, Grad::overwrite, nullptr, nullptr, pm);
      std::swap(dcur, dprev);
    }
    // forward: dec_x[0] = [emb_cls, unshuffle(emb_vis, mask_token)] + decoder_pos_embed
    zero(ws.d_emb.data(), N * T * Dd);
    if (pm == Grad::overwrite) zero(g.mask_token, Dd);
    for (Index n = 0; n < N; ++n) {  // sequential: mask_token's sum has one order
      const S* dy = dcur + n * Td * Dd;
      S* de = ws.d_emb.data() + n * T * Dd;
      for (Index d = 0; d < Dd; ++d) de[d] += dy[d];
      for (Index l = 0; l < L; ++l) {
        const Index j = ws.ids_restore[n * L + l];
        S* dst = j < K ? de + (1 + j) * Dd : g.mask_token;
        for (Index d = 0; d < Dd; ++d) dst[d] += dy[(1 + l) * Dd + d];
      }
    }
    // forward: emb = decoder_embed(latent)
    linear_backward(ws.d_latent.data(), g.decoder_embed.weight, g.decoder_embed.bias, ws.d_emb.data(),
                    ws.latent.data(), w_.decoder_embed.weight, N * T, D, Dd, Grad::overwrite, NoChunkWork{}, pm);
    // forward: latent = norm(enc_x[depth])
    dcur = ws.d_enc_a.data();
    dprev = ws.d_enc_b.data();
    zero(dcur, N * T * D);
    layernorm_backward(dcur, g.norm.weight, g.norm.bias, ws.d_latent.data(), ws.enc_x[kDepth].data(), w_.norm.weight,
                       ws.norm_mean.data(), ws.norm_rstd.data(), N * T, D, pm);
    // forward: enc_x[b+1] = blocks[b](enc_x[b])
    for (Index b = kDepth - 1; b >= 0; --b) {
      block_backward(dprev, g.blocks[b], ws.enc_scratch, dcur, ws.enc_x[b].data(), ws.enc_cache[b], w_.blocks[b], N,
                     T, encoder_block, Grad::overwrite, nullptr, nullptr, pm);
      std::swap(dcur, dprev);
    }
    // forward: enc_x[0] = [cls_token + pos_embed[0], x_patch + pos_embed[1 + ids_keep]]
    if (pm == Grad::overwrite) zero(g.cls_token, D);
    for (Index n = 0; n < N; ++n)
      for (Index d = 0; d < D; ++d) g.cls_token[d] += dcur[n * T * D + d];
    S* dxp = ws.d_x_patch.data();
#pragma omp parallel for schedule(static)
    for (Index n = 0; n < N; ++n) std::copy(dcur + (n * T + 1) * D, dcur + (n + 1) * T * D, dxp + n * K * D);
    // forward: x_patch = cols W^T + b, on the kept patches (the masked ones get no gradient)
    linear_backward<S>(nullptr, g.patch_embed.weight, g.patch_embed.bias, dxp, ws.cols.data(), w_.patch_embed.weight,
                       N * K, C * p * p, D, Grad::accumulate, NoChunkWork{}, pm);
    grads_zero_pending_ = false;
  }

  // Results of the last forward.
  S loss() const { return train_.loss; }
  Index batch_size() const { return train_.N; }
  Index num_visible_patches() const { return train_.K; }
  ConstMatMap<S> pred() const { return ConstMatMap<S>(train_.pred.data(), train_.N * L, P); }  // (N*L, p*p*C)
  ConstMatMap<S> mask() const { return ConstMatMap<S>(train_.mask.data(), train_.N, L); }      // (N, L)
  ConstMatMap<S> target() const { return ConstMatMap<S>(train_.target.data(), train_.N * L, P); }
  const std::int64_t* ids_restore() const { return train_.ids_restore.data(); }  // (N, L)
  const std::int64_t* ids_shuffle() const { return train_.ids_shuffle.data(); }  // (N, L)

  // --- downstream ------------------------------------------------------------------------
  // Encoder features without masking: norm(blocks([cls, patches] + pos)), (N*(1+L), D),
  // tokens in spatial order. Uses its own buffers: a pending backward() is not disturbed.
  ConstMatMap<S> features(const ImageBatch<S>& imgs) {
    check_images(imgs, "features");
    const Index N = imgs.n;
    Workspace& ws = infer_;
    ws.reserve(N, L);
    for (Index n = 0; n < N; ++n)
      for (Index l = 0; l < L; ++l) ws.ids_shuffle[n * L + l] = l;
    encode(ws, imgs.data, N, L);
    return ConstMatMap<S>(ws.latent.data(), N * (1 + L), D);
  }

  // --- weights I/O (safetensors, official names and shapes) ----------------------------
  std::vector<safetensors::TensorOut> state_dict() const {
    std::vector<safetensors::TensorOut> out;
    out.push_back(safetensors::TensorOut::of<S>("pos_embed", {1, 1 + L, D}, pos_embed_.data()));
    out.push_back(safetensors::TensorOut::of<S>("decoder_pos_embed", {1, 1 + L, Dd}, decoder_pos_embed_.data()));
    for (const auto& t : params_.tensors())
      out.push_back(safetensors::TensorOut::of<S>(t.name, t.shape, params_.data() + t.offset));
    return out;
  }
  std::map<std::string, std::string> metadata() const {
    return {{"format", "pt"}, {"mae.config", Cfg::name()}, {"mae.norm_pix_loss", opt_.norm_pix_loss ? "1" : "0"}};
  }
  void save(const std::string& path) const { safetensors::save(path, state_dict(), metadata()); }

  // Refuses a file whose metadata names another configuration (files without it, such as
  // ones converted from PyTorch, are checked tensor by tensor on load).
  static void check_configuration(const safetensors::File& f) {
    auto it = f.metadata().find("mae.config");
    if (it != f.metadata().end() && it->second != Cfg::name())
      f.fail("checkpoint is for another configuration (" + it->second + "); this model is " + Cfg::name());
  }

  // Load weights saved here or converted from PyTorch. Everything is checked before anything
  // is changed: a bad file leaves the model as it was. With strict, a tensor the model does
  // not have is an error; otherwise extra tensors (e.g. optimizer state) are ignored.
  void load(const std::string& path, bool strict = true) { load(safetensors::File(path), strict); }
  void load(const safetensors::File& f, bool strict = true) {
    check_configuration(f);
    std::vector<S> staged(static_cast<std::size_t>(params_.size()));
    std::vector<S> pos(pos_embed_.size()), dpos(decoder_pos_embed_.size());
    auto read = [&](const std::string& name, const Shape& shape, S* dst) {
      if (!f.contains(name)) f.fail("tensor '" + name + "' is missing (a checkpoint of another model?)");
      if (f.entry(name).shape != shape)
        f.fail("tensor '" + name + "' has shape " + shape_string(f.entry(name).shape) + " but " + Cfg::name() +
               " expects " + shape_string(shape) + ": the checkpoint is for another configuration");
      f.read(name, shape, dst);
    };
    read("pos_embed", {1, 1 + L, D}, pos.data());
    read("decoder_pos_embed", {1, 1 + L, Dd}, dpos.data());
    for (const auto& t : params_.tensors()) read(t.name, t.shape, staged.data() + t.offset);
    if (strict)
      for (const auto& [name, e] : f.tensors())
        if (!params_.try_find(name) && name != "pos_embed" && name != "decoder_pos_embed")
          f.fail("unexpected tensor '" + name + "' (not part of " + Cfg::name() + ")");
    std::copy(staged.begin(), staged.end(), params_.data());
    pos_embed_ = std::move(pos);
    decoder_pos_embed_ = std::move(dpos);
  }

 private:
  // Activations of one batch, kept for backward; grown on demand, never shrunk.
  struct Workspace {
    Index N = 0, K = 0;
    S loss = 0;
    std::vector<S> noise, mask;                      // (N, L)
    std::vector<std::int64_t> ids_shuffle, ids_restore;  // (N, L)
    std::vector<S> cols, x_patch;                    // (N, K, C*p*p), (N, K, D): the kept patches
    std::vector<std::vector<S>> enc_x;               // depth+1 x (N, 1+K, D)
    std::vector<BlockCache<S>> enc_cache = std::vector<BlockCache<S>>(kDepth);
    std::vector<S> latent, norm_mean, norm_rstd;     // (N, 1+K, D), (N*(1+K)) x2
    std::vector<S> emb;                              // (N, 1+K, D')
    std::vector<std::vector<S>> dec_x;               // ddepth+1 x (N, 1+L, D')
    std::vector<BlockCache<S>> dec_cache = std::vector<BlockCache<S>>(kDecoderDepth);
    std::vector<S> dec_normed, dec_norm_mean, dec_norm_rstd;  // (N, 1+L, D'), (N*(1+L)) x2
    std::vector<S> pred_full;                        // (N, 1+L, P)
    std::vector<S> pred, target;                     // (N, L, P)
    std::vector<S> loss_nl;                          // (N, L)
    // backward
    BlockScratch<S> enc_scratch, dec_scratch;
    std::vector<S> d_pred, d_pred_full, d_dec_normed, d_dec_a, d_dec_b, d_emb, d_latent, d_enc_a, d_enc_b, d_x_patch;

    void reserve(Index n, Index k) {
      N = n, K = k;
      const Index T = 1 + K, Td = 1 + L;
      ensure(noise, N * L), ensure(mask, N * L), ensure(ids_shuffle, N * L), ensure(ids_restore, N * L);
      ensure(cols, N * K * C * p * p), ensure(x_patch, N * K * D);
      enc_x.resize(kDepth + 1);
      for (auto& x : enc_x) ensure(x, N * T * D);
      ensure(latent, N * T * D), ensure(norm_mean, N * T), ensure(norm_rstd, N * T);
      ensure(emb, N * T * Dd);
      dec_x.resize(kDecoderDepth + 1);
      for (auto& x : dec_x) ensure(x, N * Td * Dd);
      ensure(dec_normed, N * Td * Dd), ensure(dec_norm_mean, N * Td), ensure(dec_norm_rstd, N * Td);
      ensure(pred_full, N * Td * P), ensure(pred, N * L * P), ensure(target, N * L * P), ensure(loss_nl, N * L);
    }
    void reserve_backward(Index n, Index k) {
      const Index T = 1 + k, Td = 1 + L;
      ensure(d_pred, n * L * P), ensure(d_pred_full, n * Td * P), ensure(d_dec_normed, n * Td * Dd);
      ensure(d_dec_a, n * Td * Dd), ensure(d_dec_b, n * Td * Dd), ensure(d_emb, n * T * Dd);
      ensure(d_latent, n * T * D), ensure(d_enc_a, n * T * D), ensure(d_enc_b, n * T * D);
      ensure(d_x_patch, n * k * D);
    }
  };

  void check_images(const ImageBatch<S>& imgs, const char* what) const {
    if (imgs.data == nullptr || imgs.n <= 0)
      throw Error(std::string(what) + ": empty image batch (N = " + std::to_string(imgs.n) + ")");
    if (imgs.channels != C || imgs.height != Cfg::img_size || imgs.width != Cfg::img_size)
      throw Error(std::string(what) + ": images are " + std::to_string(imgs.channels) + "x" +
                  std::to_string(imgs.height) + "x" + std::to_string(imgs.width) + " (CxHxW) but this model (" +
                  Cfg::name() + ") takes " + std::to_string(C) + "x" + std::to_string(Cfg::img_size) + "x" +
                  std::to_string(Cfg::img_size));
  }

  // Encoder on the K tokens ws.ids_shuffle[:, :K] (all L in order for features): ws.latent.
  void encode(Workspace& ws, const S* imgs, Index N, Index K) {
    const Index T = 1 + K;
    // The reference embeds every patch, adds pos_embed[1:] and keeps the rows ids_keep; the
    // same rows come from embedding the kept patches only:
    // x_patch = im2col(imgs)[ids_keep] W^T + b                                  (N, K, D)
    im2col<S, false>(ws.cols.data(), imgs, N, patch_shape, ws.ids_shuffle.data(), K);
    linear_forward(ws.x_patch.data(), ws.cols.data(), w_.patch_embed.weight, w_.patch_embed.bias, N * K, C * p * p, D);
    // enc_x[0] = [cls_token + pos_embed[0], x_patch + pos_embed[1 + ids_keep]]   (N, 1+K, D)
    S* x0 = ws.enc_x[0].data();
    const S* xp = ws.x_patch.data();
    const std::int64_t* ids = ws.ids_shuffle.data();
#pragma omp parallel for schedule(static)
    for (Index n = 0; n < N; ++n) {
      for (Index d = 0; d < D; ++d) x0[n * T * D + d] = w_.cls_token[d] + pos_embed_[d];
      for (Index k = 0; k < K; ++k) {
        const S* pos = pos_embed_.data() + (1 + ids[n * L + k]) * D;
        for (Index d = 0; d < D; ++d) x0[(n * T + 1 + k) * D + d] = xp[(n * K + k) * D + d] + pos[d];
      }
    }
    // blocks, then norm                                                        (N, 1+K, D)
    for (Index b = 0; b < kDepth; ++b)
      block_forward(ws.enc_x[b + 1].data(), ws.enc_cache[b], ws.enc_x[b].data(), w_.blocks[b], N, T, encoder_block);
    layernorm_forward(ws.latent.data(), ws.norm_mean.data(), ws.norm_rstd.data(), ws.enc_x[kDepth].data(),
                      w_.norm.weight, w_.norm.bias, N * T, D);
  }

  void decode(Workspace& ws, Index N, Index K) {
    const Index T = 1 + K, Td = 1 + L;
    // emb = decoder_embed(latent)                                              (N, 1+K, D')
    linear_forward(ws.emb.data(), ws.latent.data(), w_.decoder_embed.weight, w_.decoder_embed.bias, N * T, D, Dd);
    // dec_x[0] = [emb_cls, unshuffle([emb_vis, mask_token x (L-K)])] + decoder_pos_embed   (N, 1+L, D')
    S* y = ws.dec_x[0].data();
    const S* emb = ws.emb.data();
    const S* pos = decoder_pos_embed_.data();
    const std::int64_t* restore = ws.ids_restore.data();
    const S* mask_token = w_.mask_token;
#pragma omp parallel for schedule(static)
    for (Index nt = 0; nt < N * Td; ++nt) {
      const Index n = nt / Td, t = nt % Td;
      const S* src = emb + n * T * Dd;  // cls row
      if (t > 0) {
        const Index j = restore[n * L + (t - 1)];
        src = j < K ? emb + (n * T + 1 + j) * Dd : mask_token;
      }
      for (Index d = 0; d < Dd; ++d) y[nt * Dd + d] = src[d] + pos[t * Dd + d];
    }
    for (Index b = 0; b < kDecoderDepth; ++b)
      block_forward(ws.dec_x[b + 1].data(), ws.dec_cache[b], ws.dec_x[b].data(), w_.decoder_blocks[b], N, Td,
                    decoder_block);
    layernorm_forward(ws.dec_normed.data(), ws.dec_norm_mean.data(), ws.dec_norm_rstd.data(),
                      ws.dec_x[kDecoderDepth].data(), w_.decoder_norm.weight, w_.decoder_norm.bias, N * Td, Dd);
    // pred = decoder_pred(dec_normed)[:, 1:]                                   (N, L, P)
    linear_forward(ws.pred_full.data(), ws.dec_normed.data(), w_.decoder_pred.weight, w_.decoder_pred.bias, N * Td, Dd,
                   P);
    for (Index n = 0; n < N; ++n)
      std::copy(ws.pred_full.data() + (n * Td + 1) * P, ws.pred_full.data() + (n + 1) * Td * P,
                ws.pred.data() + n * L * P);
  }

  Options opt_;
  Rng rng_;
  TensorStore<S> params_;
  mutable TensorStore<S> grads_;  // mutable: zeroed on first read after zero_grad(), see gradients()
  Params w_, g_;
  std::vector<S> pos_embed_, decoder_pos_embed_;
  Workspace train_, infer_;
  bool has_forward_ = false;
  // zero_grad() was called and no backward since: the gradients' contents are stale
  mutable bool grads_zero_pending_ = false;
  TensorStore<S>& settled_grads() const {
    if (grads_zero_pending_) {
      grads_.set_zero();
      grads_zero_pending_ = false;
    }
    return grads_;
  }
};

// The official presets (float) and the toy presets.
using mae_vit_base_patch16_dec512d8b = MaskedAutoencoder<presets::vit_base_patch16_dec512d8b<float>>;
using mae_vit_large_patch16_dec512d8b = MaskedAutoencoder<presets::vit_large_patch16_dec512d8b<float>>;
using mae_vit_huge_patch14_dec512d8b = MaskedAutoencoder<presets::vit_huge_patch14_dec512d8b<float>>;
using mae_vit_tiny_28x28_gray = MaskedAutoencoder<presets::vit_tiny_28x28_gray<float>>;
using mae_vit_tiny_32x32_rgb = MaskedAutoencoder<presets::vit_tiny_32x32_rgb<float>>;
using mae_vit_tiny_patch16_224 = MaskedAutoencoder<presets::vit_tiny_patch16_224<float>>;

}  // namespace mae

#endif  // MAE_MODEL_HPP
