// mae/models/classifier.hpp — the ViT classifier that fine-tunes and probes an MAE encoder
// (VisionTransformer of models_vit.py, timm 0.3.2 blocks):
//
//   x = [cls_token, patch_embed(imgs)] + pos_embed                 (N, 1+L, D)   no masking
//   x = blocks(x)            with drop path (stochastic depth) in training
//   global_pool:  f = fc_norm(mean_{t >= 1} x[:, t])                 (N, D)
//   cls token:    f = norm(x)[:, 0]                                  (N, D)
//   logits = head(f)                                                 (N, classes)
//   loss   = cross_entropy(logits, labels, label_smoothing)
//            or, forward_soft(): soft_cross_entropy(logits, targets)  (mixup / cutmix targets)
//
// The encoder's tensors carry the MAE checkpoint's names, so load_encoder() reads them from
// a pretraining checkpoint. As in the reference, pos_embed is a trainable parameter here
// (initialized with the fixed sin-cos table), and with global_pool the pretrained `norm` is
// dropped and a fresh `fc_norm` takes its place. Drop path rates grow linearly over the
// blocks from 0 to Options::drop_path (torch.linspace(0, drop_path, depth)).
#ifndef MAE_MODELS_CLASSIFIER_HPP
#define MAE_MODELS_CLASSIFIER_HPP

#include "../core/common.hpp"
#include "../core/params.hpp"
#include "../core/rng.hpp"
#include "../io/checkpoint.hpp"
#include "../io/interchange.hpp"
#include "../io/safetensors.hpp"
#include "../layers/cross_entropy.hpp"
#include "../layers/layernorm.hpp"
#include "../layers/linear.hpp"
#include "../layers/patch.hpp"
#include "../layers/pos_embed.hpp"
#include "../layers/tokens.hpp"
#include "config.hpp"
#include "encoder.hpp"
#include "masked_autoencoder.hpp"  // MaskedAutoencoder::check_configuration, for load_encoder

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

namespace mae {

template <class Cfg>
class VisionTransformer {
 public:
  using Config = Cfg;
  using Scalar = typename Cfg::Scalar;
  using S = Scalar;
  using Enc = Encoder<Cfg>;

  static constexpr Index C = Cfg::in_chans, p = Cfg::patch_size, G = Cfg::grid, L = Cfg::num_patches;
  static constexpr Index D = Cfg::embed_dim, T = 1 + Cfg::num_patches, kDepth = Cfg::depth;
  static constexpr BlockShape block_shape = Enc::block_shape;
  static constexpr PatchShape patch_shape = Enc::patch_shape;

  struct Options {
    Index num_classes = 10;
    bool global_pool = true;       // mean of the patch tokens + fc_norm; false: the normed cls token
    double drop_path = 0.1;        // the last block's rate
    double label_smoothing = 0.1;  // 0: plain cross-entropy
    std::uint64_t seed = 0;        // initialization and the drop-path draws
    // The products of the linear layers and attention (as MaskedAutoencoder::Options)
    Precision precision = Precision::fp32;
  };

  struct Params {
    typename Enc::Params encoder;  // cls_token, patch_embed, blocks
    S* pos_embed = nullptr;        // (1, 1+L, D), trainable here
    LayerNormParams<S> norm;       // "fc_norm" with global_pool, else "norm"
    LinearParams<S> head;          // (classes, D)
  };

  // f(name, shape, S*&) for every trainable tensor, with the names of models_vit.py.
  template <class F>
  void visit(Params& w, F&& f) const {
    Enc::visit(w.encoder, f, &w.pos_embed);
    f(norm_name() + ".weight", {D}, w.norm.weight);
    f(norm_name() + ".bias", {D}, w.norm.bias);
    f("head.weight", {opt_.num_classes, D}, w.head.weight);
    f("head.bias", {opt_.num_classes}, w.head.bias);
  }

  explicit VisionTransformer(Options opt = Options{}) : opt_(opt), rng_(mix(opt.seed)) {
    if (opt.num_classes < 1) throw Error("a classifier needs at least one class");
    if (!(opt.drop_path >= 0 && opt.drop_path < 1)) throw Error("drop_path must be in [0, 1)");
    if (!(opt.label_smoothing >= 0 && opt.label_smoothing < 1)) throw Error("label_smoothing must be in [0, 1)");
    check_precision_for_scalar(opt.precision, std::is_same_v<S, float>);
    params_.build([this](auto&& f) { visit(w_, f); });
    grads_.build([this](auto&& f) { visit(g_, f); });
    initialize(opt.seed);
  }
  VisionTransformer(const VisionTransformer&) = delete;  // Params point into our own stores
  VisionTransformer& operator=(const VisionTransformer&) = delete;

  TensorStore<S>& parameters() { return params_; }
  const TensorStore<S>& parameters() const { return params_; }
  TensorStore<S>& gradients() { return grads_; }
  const TensorStore<S>& gradients() const { return grads_; }
  Params& params() { return w_; }
  Params& grads() { return g_; }
  const Options& options() const { return opt_; }
  Index num_classes() const { return opt_.num_classes; }
  bool global_pool() const { return opt_.global_pool; }  // fc_norm of the patch-token mean; false: norm, cls
  // Options::precision, set once, in the shape every block and the patch embedding run with
  BlockShape encoder_shape() const { return with_precision(block_shape, opt_.precision); }
  std::string norm_name() const { return opt_.global_pool ? "fc_norm" : "norm"; }
  Rng& rng() { return rng_; }
  // Sets every gradient to zero: call once per optimizer step (backward adds to them).
  void zero_grad() { grads_.set_zero(); }

  // The initialization of a fresh MAE encoder (xavier linears, sin-cos pos_embed, cls
  // N(0, 0.02)), with the fine-tuning head of main_finetune.py: weight N(0, 2e-5), bias 0.
  void initialize(std::uint64_t seed) {
    Rng r(seed);
    sincos_pos_embed_2d(w_.pos_embed, D, G);
    init_patch_embed(w_.encoder.patch_embed, patch_shape, D, r);
    for (Index i = 0; i < D; ++i) w_.encoder.cls_token[i] = static_cast<S>(0.02 * r.normal());
    for (auto& b : w_.encoder.blocks) init_block(b, block_shape, r);
    init_layernorm(w_.norm, D);
    reset_head(2e-5, seed);
  }

  // head.weight ~ N(0, std) truncated at +-2 (timm's trunc_normal_), head.bias = 0.
  void reset_head(double std, std::uint64_t seed) {
    Rng r(mix(seed ^ 0x4ead));
    for (Index i = 0; i < opt_.num_classes * D; ++i) {
      double v = std * r.normal();
      while (std::abs(v) > 2.0) v = std * r.normal();
      w_.head.weight[i] = static_cast<S>(v);
    }
    zero(w_.head.bias, opt_.num_classes);
  }

  // --- training and inference ---------------------------------------------------------
  // Forward on a batch. training: drop path on, drawn from rng(), or, given sample_seeds (N),
  // sample n's draws from a generator seeded by sample_seeds[n] (what data-parallel
  // fine-tuning uses: a sample's draws then do not depend on which process holds it).
  // labels (N) may be null (inference): then the loss is 0 and backward() is not allowed.
  S forward(const ImageBatch<S>& imgs, const int* labels, bool training = true,
            const std::uint64_t* sample_seeds = nullptr) {
    forward_logits(imgs, training, sample_seeds);
    Workspace& ws = ws_;
    const Index N = ws.N, K = opt_.num_classes;
    ws.has_labels = false;  // until the labels are checked
    if (labels) {
      std::copy(labels, labels + N, ws.labels.begin());
      ws.loss = cross_entropy_forward(ws.probs.data(), ws.logits.data(), labels, N, K, opt_.label_smoothing);
      ws.has_labels = true;
    } else {  // probs = softmax(logits), for probabilities()
      for (Index n = 0; n < N; ++n) softmax_row(ws.probs.data() + n * K, ws.logits.data() + n * K, K);
    }
    return ws.loss;
  }

  // Forward with soft targets (N, classes), e.g. mixup's (the smoothing is then in the targets,
  // as timm's Mixup + SoftTargetCrossEntropy; Options::label_smoothing is not applied).
  template <class T>
  S forward_soft(const ImageBatch<S>& imgs, const T* targets, bool training = true,
                 const std::uint64_t* sample_seeds = nullptr) {
    if (!targets) throw Error("forward_soft needs targets");
    forward_logits(imgs, training, sample_seeds);
    Workspace& ws = ws_;
    const Index N = ws.N, K = opt_.num_classes;
    ws.has_labels = false;  // until the targets are checked
    for (Index i = 0; i < N * K; ++i)
      if (!std::isfinite(static_cast<double>(targets[i])))
        throw Error("soft target " + std::to_string(i) + " is not finite");
    ensure(ws.targets, N * K);
    std::copy(targets, targets + N * K, ws.targets.begin());
    // loss = soft_cross_entropy(logits, targets)
    ws.loss = soft_cross_entropy_forward(ws.probs.data(), ws.logits.data(), ws.targets.data(), N, K);
    ws.has_labels = ws.soft = true;
    return ws.loss;
  }

  // Adds (+=) the gradient of dloss * loss to gradients(). Mirrors forward, in reverse.
  // ready, if given, hears of the gradients as they become final (params.hpp's GradientsReady).
  void backward(S dloss = S(1), const GradientsReady& ready = {}) {
    if (!has_forward_ || !ws_.has_labels) throw Error("backward() needs a forward() with labels first");
    Workspace& ws = ws_;
    const Index N = ws.N, K = opt_.num_classes;
    ws.reserve_backward(N, K);
    Params& g = g_;
    const auto final_from = [&](const S* first) {
      if (ready) ready(grads_.offset_of(first));
    };
    // forward: loss = cross_entropy(logits, labels) / soft_cross_entropy(logits, targets)
    zero(ws.d_logits.data(), N * K);
    if (ws.soft)
      soft_cross_entropy_backward(ws.d_logits.data(), ws.probs.data(), ws.targets.data(), N, K, dloss);
    else
      cross_entropy_backward(ws.d_logits.data(), ws.probs.data(), ws.labels.data(), N, K, opt_.label_smoothing, dloss);
    // forward: logits = head(feat)
    linear_backward(ws.d_feat.data(), g.head.weight, g.head.bias, ws.d_logits.data(), ws.feat.data(), w_.head.weight, N,
                    D, K, LinearBackwardOptions::in(opt_.precision).assigning());
    final_from(g.head.weight);
    // forward: feat = norm(pooled)
    zero(ws.d_pooled.data(), N * D);
    layernorm_backward(ws.d_pooled.data(), g.norm.weight, g.norm.bias, ws.d_feat.data(), ws.pooled.data(),
                       w_.norm.weight, ws.feat_mean.data(), ws.feat_rstd.data(), N, D);
    final_from(g.norm.weight);
    // forward: pooled = pool(x)
    zero(ws.d_x.data(), N * T * D);
    pool_tokens_backward(ws.d_x.data(), ws.d_pooled.data(), N, T, D, pool());
    // forward: x = encoder(imgs) with pos_embed
    Enc::backward(g.encoder, g.pos_embed, ws.enc_scratch, ws.d_x.data(), ws.enc, w_.encoder, N, nullptr, L,
                  ws.keep_ptrs.data(), encoder_shape(),
                  [&](Index b) { final_from(first_tensor(g.encoder.blocks[static_cast<std::size_t>(b)])); });
    final_from(grads_.data());
  }

  // Evaluation-mode forwards over `count` images in batches of `batch`: image(i, dst) writes
  // image i, normalized, as (C, H, W) floats (called in parallel); after each forward,
  // done(first, B) reads its results (logits(), features(), ...).
  template <class ImageFn, class Done>
  void for_each_batch(Index count, Index batch, ImageFn&& image, Done&& done) {
    constexpr Index HW = Cfg::img_size, CHW = C * HW * HW;
    std::vector<float> imgs(static_cast<std::size_t>(batch * CHW));
    std::vector<S> converted;  // only for double models: images come as float
    for (Index s = 0; s < count; s += batch) {
      const Index B = std::min(batch, count - s);
#pragma omp parallel for schedule(static)
      for (Index i = 0; i < B; ++i) image(s + i, imgs.data() + i * CHW);
      const S* x = nullptr;
      if constexpr (std::is_same_v<S, float>) {
        x = imgs.data();
      } else {
        converted.assign(imgs.begin(), imgs.begin() + B * CHW);
        x = converted.data();
      }
      forward(images(x, B, C, HW, HW), nullptr, /*training=*/false);
      done(s, B);
    }
  }

  // Results of the last forward.
  S loss() const { return ws_.loss; }
  Index batch_size() const { return ws_.N; }
  ConstMatMap<S> logits() const { return ConstMatMap<S>(ws_.logits.data(), ws_.N, opt_.num_classes); }  // (N, classes)
  // softmax(logits) (N, classes), after any forward
  ConstMatMap<S> probabilities() const { return ConstMatMap<S>(ws_.probs.data(), ws_.N, opt_.num_classes); }
  // The head's input (N, D): fc_norm(mean of patch tokens) or norm(x)[:, 0].
  ConstMatMap<S> features() const { return ConstMatMap<S>(ws_.feat.data(), ws_.N, D); }
  // The output of block b (b = 1..depth; 0: the embedded tokens), (N*(1+L), D), cls first.
  ConstMatMap<S> block_output(Index b) const {
    if (b < 0 || b > kDepth) throw Error("block_output: no block " + std::to_string(b));
    return ConstMatMap<S>(ws_.enc.stack.x[b].data(), ws_.N * T, D);
  }
  // Block b's attention probabilities (b = 1..depth) in the last forward: (N*H*(1+L), 1+L),
  // row (n, h, i) the softmax over keys of query token i in head h of image n (cls first).
  // Recomputed from what the forward kept (its qkv and the softmax's row statistics): the
  // forward's values bit for bit, valid until the next attention() call or forward.
  ConstMatMap<S> attention(Index b) const {
    if (b < 1 || b > kDepth)
      throw Error("attention: no block " + std::to_string(b) + " (1.." + std::to_string(kDepth) + ")");
    if (!has_forward_) throw Error("attention() needs a forward() first");
    const auto& c = ws_.enc.stack.cache[static_cast<std::size_t>(b - 1)];
    const Index rows = ws_.N * Cfg::num_heads * T;
    ensure(att_, rows * T);
    attention_probabilities(att_.data(), c.qkv.data(), c.att_stats.data(), ws_.N, T, D, Cfg::num_heads, opt_.precision);
    return ConstMatMap<S>(att_.data(), rows, T);
  }
  // The drop-path scales (N) of block b's attention (branch 0) or MLP (branch 1) branch in
  // the last forward: 0 or 1/(1 - rate) per sample; null when nothing was dropped.
  const S* drop_path_scales(Index b, int branch) const { return ws_.keep_ptrs[2 * b + branch]; }
  // Class of each image of the last forward (argmax of the logits; the first on ties).
  void predictions(int* out) const {
    const Index K = opt_.num_classes;
    for (Index n = 0; n < ws_.N; ++n) {
      const S* z = ws_.logits.data() + n * K;
      out[n] = static_cast<int>(std::max_element(z, z + K) - z);
    }
  }

  // --- weights I/O ---------------------------------------------------------------------
  std::string name() const { return classifier_description(Cfg::name(), opt_.num_classes, opt_.global_pool); }
  std::vector<safetensors::TensorOut> state_dict() const {
    std::vector<safetensors::TensorOut> out;
    for (const auto& t : params_.tensors())
      out.push_back(safetensors::TensorOut::of<S>(t.name, t.shape, params_.data() + t.offset));
    return out;
  }
  std::map<std::string, std::string> metadata() const {
    return {{"format", "pt"}, {keys::config, Cfg::name()}, {keys::classifier, name()}};
  }
  void save(const std::string& path) const { safetensors::save(path, state_dict(), metadata()); }
  void save(const std::string& path, std::map<std::string, std::string> extra) const {
    auto meta = metadata();
    meta.insert(extra.begin(), extra.end());
    safetensors::save(path, state_dict(), meta);
  }

  // A classifier checkpoint of this exact model (strict: every tensor, nothing else): mae's, or
  // a timm or Hugging Face classifier (interchange::open_weights) of the same sizes, classes and
  // pooling.
  void load(const std::string& path) { load(interchange::open_weights(path)); }
  void load(const safetensors::File& f) {
    MaskedAutoencoder<Cfg>::check_configuration(f);
    if (f.metadata().count(keys::classifier)) {
      const ClassifierInfo c = read_classifier_info(f.metadata(), f.path());
      const bool foreign = c.config == "timm" || c.config == "hf";  // sizes checked above, from its config.json
      if ((c.config != Cfg::name() && !foreign) || c.classes != opt_.num_classes || c.global_pool != opt_.global_pool)
        f.fail("checkpoint is for another classifier (" + f.metadata().at(keys::classifier) + "); this one is " +
               name());
    }
    load_staged(f, store_tensors(params_), /*strict=*/true, name());
  }

  // The encoder from an MAE pretraining checkpoint (or any file with its tensors under the
  // official names): cls_token, pos_embed, patch_embed, blocks, and norm when the head uses
  // the cls token. The head and fc_norm keep their initialization. Extra tensors (the
  // decoder, optimizer state) are ignored; a missing or misshapen one is an error, and a
  // bad file changes nothing. A checkpoint of another image size (same patch, widths, depth,
  // heads) is accepted: its pos_embed is resized to this grid by interpolate_pos_embed.
  // Returns the checkpoint's patch grid side (== Cfg::grid unless it was interpolated).
  Index load_encoder(const std::string& path) { return load_encoder(interchange::open_weights(path)); }
  Index load_encoder(const safetensors::File& f) {
    MaskedAutoencoder<Cfg>::check_configuration(f, /*any_image_size=*/true);
    for (const auto& [tname, e] : f.tensors())  // a deeper encoder would be silently cut
      if (tname.rfind("blocks.", 0) == 0 && std::stoll(tname.substr(7)) >= kDepth)
        f.fail("tensor '" + tname + "': the checkpoint's encoder is deeper than " + Cfg::name());
    std::vector<S> pos = read_pos_embed(f);
    const auto pretrained = [](const std::string& n) {
      return n.rfind("head.", 0) != 0 && n.rfind("fc_norm.", 0) != 0 && n != "pos_embed";
    };
    load_staged(f, store_tensors(params_, pretrained), /*strict=*/false, name());
    std::copy(pos.begin(), pos.end(), w_.pos_embed);
    return grid_of(static_cast<Index>(f.entry("pos_embed").shape[1]));
  }

  // The grid side of a position table of `tokens` rows (one of them the cls token); -1 if none.
  static Index grid_of(Index tokens) {
    const Index g = static_cast<Index>(std::lround(std::sqrt(static_cast<double>(tokens - 1))));
    return g * g == tokens - 1 ? g : -1;
  }

 private:
  // pos_embed (1, 1+L, D) from f, interpolated when the checkpoint's grid differs.
  std::vector<S> read_pos_embed(const safetensors::File& f) const {
    if (!f.contains("pos_embed")) f.fail("tensor 'pos_embed' is missing (a checkpoint of another model?)");
    const auto shape = f.entry("pos_embed").shape;
    const Index G0 = shape.size() == 3 && shape[0] == 1 && shape[2] == D ? grid_of(shape[1]) : -1;
    if (G0 <= 0)
      f.fail("tensor 'pos_embed' has shape " + shape_string(shape) + "; " + name() + " expects (1, 1 + G*G, " +
             std::to_string(D) + ") for a square grid");
    std::vector<S> src(static_cast<std::size_t>((1 + G0 * G0) * D)), pos(static_cast<std::size_t>(T * D));
    f.read("pos_embed", shape, src.data());
    for (std::size_t i = 0; i < src.size(); ++i)
      if (!std::isfinite(static_cast<double>(src[i])))
        f.fail("tensor 'pos_embed' holds a non-finite value at index " + std::to_string(i));
    if (G0 == G)
      pos = src;
    else
      interpolate_pos_embed(pos.data(), G, src.data(), G0, D);
    return pos;
  }

  static std::uint64_t mix(std::uint64_t s) { return s * 0x9e3779b97f4a7c15ull + 0x5851f42d4c957f2dull; }

  // forward and forward_soft up to the logits (N, classes); the loss and probs are theirs.
  void forward_logits(const ImageBatch<S>& imgs, bool training, const std::uint64_t* sample_seeds) {
    check_images<Cfg>(imgs, "classifier");
    const Index N = imgs.n, K = opt_.num_classes;
    Workspace& ws = ws_;
    ws.reserve(N, K);
    ws.N = N;
    ws.training = training;
    draw_drop_path(ws, N, training, sample_seeds);
    // x = blocks([cls_token, patch_embed(imgs)] + pos_embed)                  (N, 1+L, D)
    Enc::forward(ws.enc, w_.encoder, w_.pos_embed, imgs.data, N, nullptr, L, ws.keep_ptrs.data(), encoder_shape());
    // pooled = mean_{t>=1} x[:, t] (global_pool) or x[:, 0]                  (N, D)
    pool_tokens_forward(ws.pooled.data(), ws.enc.output(), N, T, D, pool());
    // feat = fc_norm(pooled) / norm(cls)                                      (N, D)
    layernorm_forward(ws.feat.data(), ws.feat_mean.data(), ws.feat_rstd.data(), ws.pooled.data(), w_.norm.weight,
                      w_.norm.bias, N, D);
    // logits = head(feat)                                                    (N, classes)
    linear_forward(ws.logits.data(), ws.feat.data(), w_.head.weight, w_.head.bias, N, D, K,
                   LinearForwardOptions<S>::in(opt_.precision));
    ws.loss = 0;
    ws.soft = false;
    has_forward_ = true;
  }

  struct Workspace {
    Index N = 0;
    bool training = false, has_labels = false, soft = false;
    S loss = 0;
    std::vector<S> keep;                                // depth x 2 x N drop-path scales
    std::vector<const S*> keep_ptrs;                    // depth x 2: into keep, or null (nothing dropped)
    typename Enc::Activations enc;                      // x[0..depth] (N, 1+L, D)
    std::vector<S> pooled, feat, feat_mean, feat_rstd;  // (N, D) x2, (N) x2
    std::vector<S> logits, probs;                       // (N, classes)
    std::vector<int> labels;                            // (N)
    std::vector<S> targets;                             // (N, classes): forward_soft
    typename Enc::Scratch enc_scratch;
    std::vector<S> d_logits, d_feat, d_pooled, d_x;

    void reserve(Index n, Index K) {
      ensure(keep, kDepth * 2 * n), keep_ptrs.resize(2 * kDepth);
      ensure(pooled, n * D), ensure(feat, n * D), ensure(feat_mean, n), ensure(feat_rstd, n);
      ensure(logits, n * K), ensure(probs, n * K);
      if (static_cast<Index>(labels.size()) < n) labels.resize(static_cast<std::size_t>(n));
    }
    void reserve_backward(Index n, Index K) {
      ensure(d_logits, n * K), ensure(d_feat, n * D), ensure(d_pooled, n * D), ensure(d_x, n * T * D);
    }
  };

  Pool pool() const { return opt_.global_pool ? Pool::mean_patches : Pool::cls; }
  double drop_rate(Index b) const {
    return kDepth > 1 ? opt_.drop_path * static_cast<double>(b) / static_cast<double>(kDepth - 1) : 0.0;
  }
  // timm's drop_path: keep = floor(1 - rate + U[0, 1)), scaled by 1 / (1 - rate). From rng():
  // block by block, each block's attention branch for the N samples, then its MLP branch;
  // from sample seeds: sample by sample, each sample's blocks and branches in that order.
  void draw_drop_path(Workspace& ws, Index N, bool training, const std::uint64_t* sample_seeds) {
    const auto keep = [](double rate, double u) {
      return rate > 0 ? (u >= rate ? static_cast<S>(1.0 / (1.0 - rate)) : S(0)) : S(1);
    };
    for (Index b = 0; b < kDepth; ++b) {
      const double rate = training ? drop_rate(b) : 0.0;
      if (!sample_seeds)
        for (Index i = 0; i < 2 * N; ++i) ws.keep[(b * 2) * N + i] = keep(rate, rate > 0 ? rng_.uniform() : 0.0);
      for (int branch = 0; branch < 2; ++branch)
        ws.keep_ptrs[2 * b + branch] = training && drop_rate(b) > 0 ? ws.keep.data() + (b * 2 + branch) * N : nullptr;
    }
    if (sample_seeds)
      for (Index n = 0; n < N; ++n) {
        Rng r(sample_seeds[n]);
        for (Index b = 0; b < kDepth; ++b) {
          const double rate = training ? drop_rate(b) : 0.0;
          for (int branch = 0; branch < 2; ++branch)
            ws.keep[(b * 2 + branch) * N + n] = keep(rate, rate > 0 ? r.uniform() : 0.0);
        }
      }
  }

  Options opt_;
  Rng rng_;
  TensorStore<S> params_, grads_;
  Params w_, g_;
  Workspace ws_;
  mutable std::vector<S> att_;  // attention(b)'s probabilities (N*H*(1+L), 1+L)
  bool has_forward_ = false;
};

}  // namespace mae

#endif  // MAE_MODELS_CLASSIFIER_HPP
