// mae/models/masked_autoencoder.hpp — the Masked Autoencoder (MaskedAutoencoderViT of models_mae.py).
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
#ifndef MAE_MODELS_MASKED_AUTOENCODER_HPP
#define MAE_MODELS_MASKED_AUTOENCODER_HPP

#include "../core/common.hpp"
#include "../core/params.hpp"
#include "../core/rng.hpp"
#include "../io/checkpoint.hpp"
#include "../io/interchange.hpp"
#include "../io/safetensors.hpp"
#include "../layers/block.hpp"
#include "../layers/layernorm.hpp"
#include "../layers/linear.hpp"
#include "../layers/loss.hpp"
#include "../layers/masking.hpp"
#include "../layers/patch.hpp"
#include "../layers/pos_embed.hpp"
#include "../layers/tokens.hpp"
#include "config.hpp"
#include "encoder.hpp"

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

namespace mae {

template <class Cfg>
class MaskedAutoencoder {
 public:
  using Config = Cfg;
  using Scalar = typename Cfg::Scalar;
  using S = Scalar;
  using Enc = Encoder<Cfg>;

  static constexpr Index C = Cfg::in_chans, p = Cfg::patch_size, G = Cfg::grid, L = Cfg::num_patches;
  static constexpr Index D = Cfg::embed_dim, Dd = Cfg::decoder_embed_dim, P = Cfg::patch_dim;
  static constexpr Index kDepth = Cfg::depth, kDecoderDepth = Cfg::decoder_depth;
  static constexpr BlockShape encoder_block = Enc::block_shape;
  static constexpr BlockShape decoder_block{Cfg::decoder_embed_dim, Cfg::decoder_num_heads, Cfg::decoder_mlp_hidden};
  static constexpr PatchShape patch_shape = Enc::patch_shape;

  // The trainable tensors as raw pointers into a TensorStore (parameters or gradients).
  struct Params {
    typename Enc::Params encoder;  // cls_token, patch_embed, blocks
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
    Enc::visit(w.encoder, f);
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
    // The products of every linear layer and of attention: fp32, or bf16 operands with fp32
    // sums (mixed precision, the recipe of PyTorch's CPU autocast; float models only).
    // Parameters, gradients, optimizer state and every other operation stay fp32.
    Precision precision = Precision::fp32;
  };

  explicit MaskedAutoencoder(Options opt = Options{}) : opt_(opt), rng_(opt.seed) {
    check_precision_for_scalar(opt.precision, std::is_same_v<S, float>);
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
  TensorStore<S>& gradients() { return grads_; }
  const TensorStore<S>& gradients() const { return grads_; }
  Params& params() { return w_; }
  Params& grads() { return g_; }
  const S* pos_embed() const { return pos_embed_.data(); }                  // (1 + L, D)
  const S* decoder_pos_embed() const { return decoder_pos_embed_.data(); }  // (1 + L, D')
  bool norm_pix_loss() const { return opt_.norm_pix_loss; }
  Precision precision() const { return opt_.precision; }
  Rng& rng() { return rng_; }

  // The reference initialization (initialize_weights in models_mae.py), from a seed.
  void initialize(std::uint64_t seed) {
    Rng r(seed);
    init_patch_embed(w_.encoder.patch_embed, patch_shape, D, r);
    for (Index i = 0; i < D; ++i) w_.encoder.cls_token[i] = static_cast<S>(0.02 * r.normal());
    for (Index i = 0; i < Dd; ++i) w_.mask_token[i] = static_cast<S>(0.02 * r.normal());
    for (auto& b : w_.encoder.blocks) init_block(b, encoder_block, r);
    init_layernorm(w_.norm, D);
    init_linear(w_.decoder_embed, Dd, D, r);
    for (auto& b : w_.decoder_blocks) init_block(b, decoder_block, r);
    init_layernorm(w_.decoder_norm, Dd);
    init_linear(w_.decoder_pred, P, Dd, r);
  }

  // Sets every gradient to zero: call once per optimizer step (backward adds to them).
  void zero_grad() { grads_.set_zero(); }

  // --- training ----------------------------------------------------------------------------
  // Forward on a batch: returns the loss; pred(), mask() hold the rest. noise (N, L) decides
  // the masking (ascending noise = kept); without it, noise is drawn from the model's seeded
  // generator.
  S forward(const ImageBatch<S>& imgs, double mask_ratio = 0.75, const S* noise = nullptr) {
    check_images<Cfg>(imgs, "forward");
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
    encode(ws, imgs.data, N, ws.ids_shuffle.data(), K);
    decode(ws, N, K);
    // --- loss: target = patchify(imgs), normalized per patch with norm_pix_loss
    patchify(ws.target.data(), imgs.data, N, patch_shape);
    if (opt_.norm_pix_loss) normalize_patches(ws.target.data(), N * L, P);
    ws.loss = masked_mse_forward(ws.loss_nl.data(), ws.pred.data(), ws.target.data(), ws.mask.data(), N * L, P);
    has_forward_ = true;
    return ws.loss;
  }

  // Adds (+=) the gradient of dloss * loss to gradients(); call zero_grad() once per optimizer
  // step. The forward caches are left untouched (backward may run twice). Mirrors forward:
  // the loss, decode, encode, in reverse. ready, if given, hears of the gradients as they
  // become final (params.hpp's GradientsReady), layer by layer.
  void backward(S dloss = S(1), const GradientsReady& ready = {}) {
    if (!has_forward_) throw Error("backward() needs a forward() first");
    Workspace& ws = train_;
    const Index N = ws.N, K = ws.K, T = 1 + K, Td = 1 + L;
    ws.reserve_backward(N, K);
    Params& g = g_;
    const auto final_from = [&](const S* first) {
      if (ready) ready(grads_.offset_of(first));
    };
    // --- the loss
    // forward: loss = masked_mse(pred, target)
    masked_mse_backward(ws.d_pred.data(), ws.pred.data(), ws.target.data(), ws.mask.data(), N * L, P, dloss,
                        Grad::assign);
    // --- the decoder
    // forward: pred = pred_full[:, 1:]
    drop_cls_backward(ws.d_pred_full.data(), ws.d_pred.data(), N, Td, P, Grad::assign);
    // forward: pred_full = decoder_pred(dec_normed)
    linear_backward(ws.d_dec_normed.data(), g.decoder_pred.weight, g.decoder_pred.bias, ws.d_pred_full.data(),
                    ws.dec_normed.data(), w_.decoder_pred.weight, N * Td, Dd, P, backward_products().assigning());
    final_from(g.decoder_pred.weight);
    // forward: dec_normed = decoder_norm(dec.x[depth])
    zero(ws.d_dec_out.data(), N * Td * Dd);
    layernorm_backward(ws.d_dec_out.data(), g.decoder_norm.weight, g.decoder_norm.bias, ws.d_dec_normed.data(),
                       ws.dec.output(), w_.decoder_norm.weight, ws.dec_norm_mean.data(), ws.dec_norm_rstd.data(),
                       N * Td, Dd);
    final_from(g.decoder_norm.weight);
    // forward: dec.x[b+1] = decoder_blocks[b](dec.x[b])
    const S* d_dec_in =
        stack_backward(g.decoder_blocks, ws.dec_scratch, ws.d_dec_a.data(), ws.d_dec_b.data(), ws.d_dec_out.data(),
                       ws.dec, w_.decoder_blocks, N, Td, decoder_shape(), static_cast<const S* const*>(nullptr),
                       [&](Index b) { final_from(first_tensor(g.decoder_blocks[static_cast<std::size_t>(b)])); });
    // forward: dec.x[0] = [emb_cls, unshuffle(emb_vis, mask_token)] + decoder_pos_embed
    unshuffle_backward(ws.d_emb.data(), g.mask_token, d_dec_in, ws.ids_restore.data(), N, K, L, Dd, Grad::assign);
    // forward: emb = decoder_embed(latent)
    linear_backward(ws.d_latent.data(), g.decoder_embed.weight, g.decoder_embed.bias, ws.d_emb.data(), ws.latent.data(),
                    w_.decoder_embed.weight, N * T, D, Dd, backward_products().assigning());
    final_from(g.decoder_embed.weight);  // and mask_token, after it in the store
    // --- the encoder
    // forward: latent = norm(enc.output())
    zero(ws.d_enc_out.data(), N * T * D);
    layernorm_backward(ws.d_enc_out.data(), g.norm.weight, g.norm.bias, ws.d_latent.data(), ws.enc.output(),
                       w_.norm.weight, ws.norm_mean.data(), ws.norm_rstd.data(), N * T, D);
    final_from(g.norm.weight);
    // forward: enc = encoder(imgs, ids_keep)
    Enc::backward(g.encoder, nullptr, ws.enc_scratch, ws.d_enc_out.data(), ws.enc, w_.encoder, N, ws.ids_shuffle.data(),
                  K, nullptr, encoder_shape(),
                  [&](Index b) { final_from(first_tensor(g.encoder.blocks[static_cast<std::size_t>(b)])); });
    final_from(grads_.data());
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
    check_images<Cfg>(imgs, "features");
    const Index N = imgs.n;
    Workspace& ws = infer_;
    ws.reserve(N, L);
    encode(ws, imgs.data, N, nullptr, L);
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
    return {{"format", "pt"}, {keys::config, Cfg::name()}, {keys::norm_pix_loss, opt_.norm_pix_loss ? "1" : "0"}};
  }
  void save(const std::string& path) const { safetensors::save(path, state_dict(), metadata()); }

  // Refuses a file whose metadata names another configuration (files without it, such as
  // ones converted from PyTorch, are checked tensor by tensor on load).
  // any_image_size: only the image size may differ (an encoder whose pos_embed is recomputed
  // or interpolated for this grid).
  static void check_configuration(const safetensors::File& f, bool any_image_size = false) {
    if (const auto hf = f.metadata().find(interchange::kHuggingFaceConfig); hf != f.metadata().end())
      interchange::check_hugging_face_config<Cfg>(nlohmann::json::parse(hf->second, nullptr, false), f.path(),
                                                  any_image_size);
    if (const auto timm = f.metadata().find(interchange::kTimmConfig); timm != f.metadata().end())
      interchange::check_timm_config<Cfg>(nlohmann::json::parse(timm->second, nullptr, false), f.path(),
                                          any_image_size);
    auto it = f.metadata().find(keys::config);
    if (it == f.metadata().end() || it->second == Cfg::name()) return;
    const auto without_size = [](const std::string& n) { return n.substr(std::min(n.find('_'), n.size())); };
    if (any_image_size && without_size(it->second) == without_size(Cfg::name())) return;
    f.fail("checkpoint is for another configuration (" + it->second + "); this model is " + Cfg::name());
  }

  // Load weights saved here or converted from PyTorch. Everything is checked before anything
  // is changed: a bad file leaves the model as it was. With strict, a tensor the model does
  // not have is an error; otherwise extra tensors (e.g. optimizer state) are ignored.
  // A tensor holding NaN or Inf is refused too, unless allow_non_finite (forensics).
  void load(const std::string& path, bool strict = true, bool allow_non_finite = false) {
    load(interchange::open_weights(path), strict, allow_non_finite);
  }
  // The encoder of a checkpoint (cls_token, patch_embed, blocks, norm), e.g. a released
  // encoder-only one converted by scripts/convert_checkpoint.py, to continue pretraining:
  // the decoder keeps its fresh initialization and the fixed position tables are this
  // model's own, so the checkpoint may be of another image size (same patch and widths).
  void load_encoder(const std::string& path) {
    const safetensors::File f = interchange::open_weights(path);
    check_configuration(f, /*any_image_size=*/true);
    for (const auto& [tname, e] : f.tensors())  // a deeper encoder would be silently cut
      if (tname.rfind("blocks.", 0) == 0 && std::stoll(tname.substr(7)) >= kDepth)
        f.fail("tensor '" + tname + "': the checkpoint's encoder is deeper than " + Cfg::name());
    const auto encoder = [](const std::string& n) {
      return n == "cls_token" || n.rfind("patch_embed.", 0) == 0 || n.rfind("blocks.", 0) == 0 ||
             n.rfind("norm.", 0) == 0;
    };
    load_staged(f, store_tensors(params_, encoder), /*strict=*/false, Cfg::name());
  }

  void load(const safetensors::File& f, bool strict = true, bool allow_non_finite = false) {
    check_configuration(f);
    std::vector<TensorIn<S>> wanted{{"pos_embed", {1, 1 + L, D}, pos_embed_.data()},
                                    {"decoder_pos_embed", {1, 1 + L, Dd}, decoder_pos_embed_.data()}};
    for (const auto& t : store_tensors(params_)) wanted.push_back(t);
    load_staged(f, wanted, strict, Cfg::name(), {}, allow_non_finite);
  }

 private:
  // Activations of one batch, kept for backward; grown on demand, never shrunk.
  struct Workspace {
    Index N = 0, K = 0;
    S loss = 0;
    std::vector<S> noise, mask;                               // (N, L)
    std::vector<std::int64_t> ids_shuffle, ids_restore;       // (N, L)
    typename Enc::Activations enc;                            // x[0..depth] (N, 1+K, D)
    std::vector<S> latent, norm_mean, norm_rstd;              // (N, 1+K, D), (N*(1+K)) x2
    std::vector<S> emb;                                       // (N, 1+K, D')
    StackActivations<S> dec;                                  // x[0..depth] (N, 1+L, D')
    std::vector<S> dec_normed, dec_norm_mean, dec_norm_rstd;  // (N, 1+L, D'), (N*(1+L)) x2
    std::vector<S> pred_full;                                 // (N, 1+L, P)
    std::vector<S> pred, target;                              // (N, L, P)
    std::vector<S> loss_nl;                                   // (N, L)
    // backward
    typename Enc::Scratch enc_scratch;
    BlockScratch<S> dec_scratch;
    std::vector<S> d_pred, d_pred_full, d_dec_normed, d_dec_out, d_dec_a, d_dec_b, d_emb, d_latent, d_enc_out;

    void reserve(Index n, Index k) {
      N = n, K = k;
      const Index T = 1 + K, Td = 1 + L;
      ensure(noise, N * L), ensure(mask, N * L), ensure(ids_shuffle, N * L), ensure(ids_restore, N * L);
      enc.reserve(N, K);
      ensure(latent, N * T * D), ensure(norm_mean, N * T), ensure(norm_rstd, N * T);
      ensure(emb, N * T * Dd);
      dec.reserve(kDecoderDepth, N, Td, Dd);
      ensure(dec_normed, N * Td * Dd), ensure(dec_norm_mean, N * Td), ensure(dec_norm_rstd, N * Td);
      ensure(pred_full, N * Td * P), ensure(pred, N * L * P), ensure(target, N * L * P), ensure(loss_nl, N * L);
    }
    void reserve_backward(Index n, Index k) {
      const Index T = 1 + k, Td = 1 + L;
      ensure(d_pred, n * L * P), ensure(d_pred_full, n * Td * P), ensure(d_dec_normed, n * Td * Dd);
      ensure(d_dec_out, n * Td * Dd), ensure(d_dec_a, n * Td * Dd), ensure(d_dec_b, n * Td * Dd);
      ensure(d_emb, n * T * Dd), ensure(d_latent, n * T * D), ensure(d_enc_out, n * T * D);
    }
  };

  // Options::precision, set once, in the shapes and options every product is called with
  BlockShape encoder_shape() const { return with_precision(Enc::block_shape, opt_.precision); }
  BlockShape decoder_shape() const { return with_precision(decoder_block, opt_.precision); }
  LinearForwardOptions<S> forward_products() const { return LinearForwardOptions<S>::in(opt_.precision); }
  LinearBackwardOptions backward_products() const { return LinearBackwardOptions::in(opt_.precision); }

  // latent (N, 1+K, D) = norm(encoder(imgs, ids))
  void encode(Workspace& ws, const S* imgs, Index N, const std::int64_t* ids, Index K) {
    const Index T = 1 + K;
    Enc::forward(ws.enc, w_.encoder, pos_embed_.data(), imgs, N, ids, K, nullptr, encoder_shape());
    layernorm_forward(ws.latent.data(), ws.norm_mean.data(), ws.norm_rstd.data(), ws.enc.output(), w_.norm.weight,
                      w_.norm.bias, N * T, D);
  }

  // pred (N, L, P) from latent
  void decode(Workspace& ws, Index N, Index K) {
    const Index T = 1 + K, Td = 1 + L;
    // emb = decoder_embed(latent)                                              (N, 1+K, D')
    linear_forward(ws.emb.data(), ws.latent.data(), w_.decoder_embed.weight, w_.decoder_embed.bias, N * T, D, Dd,
                   forward_products());
    // dec.x[0] = [emb_cls, unshuffle([emb_vis, mask_token x (L-K)])] + decoder_pos_embed   (N, 1+L, D')
    unshuffle_forward(ws.dec.input(), ws.emb.data(), w_.mask_token, decoder_pos_embed_.data(), ws.ids_restore.data(), N,
                      K, L, Dd);
    // dec.x[b+1] = decoder_blocks[b](dec.x[b])                                  (N, 1+L, D')
    stack_forward(ws.dec, w_.decoder_blocks, N, Td, decoder_shape());
    layernorm_forward(ws.dec_normed.data(), ws.dec_norm_mean.data(), ws.dec_norm_rstd.data(), ws.dec.output(),
                      w_.decoder_norm.weight, w_.decoder_norm.bias, N * Td, Dd);
    // pred = decoder_pred(dec_normed)[:, 1:]                                   (N, L, P)
    linear_forward(ws.pred_full.data(), ws.dec_normed.data(), w_.decoder_pred.weight, w_.decoder_pred.bias, N * Td, Dd,
                   P, forward_products());
    drop_cls_forward(ws.pred.data(), ws.pred_full.data(), N, Td, P);
  }

  Options opt_;
  Rng rng_;
  TensorStore<S> params_, grads_;
  Params w_, g_;
  std::vector<S> pos_embed_, decoder_pos_embed_;
  Workspace train_, infer_;
  bool has_forward_ = false;
};

// The official presets (float) and the toy presets.
using mae_vit_base_patch16_dec512d8b = MaskedAutoencoder<presets::vit_base_patch16_dec512d8b<float>>;
using mae_vit_large_patch16_dec512d8b = MaskedAutoencoder<presets::vit_large_patch16_dec512d8b<float>>;
using mae_vit_huge_patch14_dec512d8b = MaskedAutoencoder<presets::vit_huge_patch14_dec512d8b<float>>;
using mae_vit_tiny_28x28_gray = MaskedAutoencoder<presets::vit_tiny_28x28_gray<float>>;
using mae_vit_tiny_32x32_rgb = MaskedAutoencoder<presets::vit_tiny_32x32_rgb<float>>;
using mae_vit_tiny_patch16_224 = MaskedAutoencoder<presets::vit_tiny_patch16_224<float>>;
using mae_vit_tiny_64x64_rgb = MaskedAutoencoder<presets::vit_tiny_64x64_rgb<float>>;
using mae_vit_tiny_96x96_rgb = MaskedAutoencoder<presets::vit_tiny_96x96_rgb<float>>;
using mae_vit_base_patch16_128 = MaskedAutoencoder<presets::vit_base_patch16_128<float>>;

}  // namespace mae

#endif  // MAE_MODELS_MASKED_AUTOENCODER_HPP
