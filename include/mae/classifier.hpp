// mae/classifier.hpp — the ViT classifier that fine-tunes and probes an MAE encoder
// (VisionTransformer of models_vit.py, timm 0.3.2 blocks):
//
//   x = [cls_token, patch_embed(imgs)] + pos_embed                 (N, 1+L, D)   no masking
//   x = blocks(x)            with drop path (stochastic depth) in training
//   global_pool:  f = fc_norm(mean_{t >= 1} x[:, t])                 (N, D)
//   cls token:    f = norm(x)[:, 0]                                  (N, D)
//   logits = head(f)                                                 (N, classes)
//   loss   = cross_entropy(logits, labels, label_smoothing)
//
// The encoder's tensors carry the MAE checkpoint's names, so load_encoder() reads them from
// a pretraining checkpoint. As in the reference, pos_embed is a trainable parameter here
// (initialized with the fixed sin-cos table), and with global_pool the pretrained `norm` is
// dropped and a fresh `fc_norm` takes its place. Drop path rates grow linearly over the
// blocks from 0 to Options::drop_path (torch.linspace(0, drop_path, depth)).
#ifndef MAE_CLASSIFIER_HPP
#define MAE_CLASSIFIER_HPP

#include "block.hpp"
#include "common.hpp"
#include "config.hpp"
#include "cross_entropy.hpp"
#include "layernorm.hpp"
#include "linear.hpp"
#include "model.hpp"
#include "optim.hpp"
#include "params.hpp"
#include "patch.hpp"
#include "pos_embed.hpp"
#include "rng.hpp"
#include "safetensors.hpp"

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

  static constexpr Index C = Cfg::in_chans, p = Cfg::patch_size, G = Cfg::grid, L = Cfg::num_patches;
  static constexpr Index D = Cfg::embed_dim, T = 1 + Cfg::num_patches, kDepth = Cfg::depth;
  static constexpr BlockShape block_shape{Cfg::embed_dim, Cfg::num_heads, Cfg::mlp_hidden};
  static constexpr PatchShape patch_shape{Cfg::in_chans, Cfg::patch_size, Cfg::grid};

  struct Options {
    Index num_classes = 10;
    bool global_pool = true;       // mean of the patch tokens + fc_norm; false: the normed cls token
    double drop_path = 0.1;        // the last block's rate
    double label_smoothing = 0.1;  // 0: plain cross-entropy
    std::uint64_t seed = 0;        // initialization and the drop-path draws
  };

  struct Params {
    S* cls_token = nullptr;  // (1, 1, D)
    S* pos_embed = nullptr;  // (1, 1+L, D)
    PatchEmbedParams<S> patch_embed;
    std::vector<BlockParams<S>> blocks = std::vector<BlockParams<S>>(kDepth);
    LayerNormParams<S> norm;  // "fc_norm" with global_pool, else "norm"
    LinearParams<S> head;     // (classes, D)
  };

  // f(name, shape, S*&) for every trainable tensor, with the names of models_vit.py.
  template <class F>
  void visit(Params& w, F&& f) const {
    f("cls_token", {1, 1, D}, w.cls_token);
    f("pos_embed", {1, T, D}, w.pos_embed);
    f("patch_embed.proj.weight", {D, C, p, p}, w.patch_embed.weight);
    f("patch_embed.proj.bias", {D}, w.patch_embed.bias);
    for (Index i = 0; i < kDepth; ++i) visit_block(w.blocks[i], "blocks." + std::to_string(i) + ".", block_shape, f);
    f(norm_name() + ".weight", {D}, w.norm.weight);
    f(norm_name() + ".bias", {D}, w.norm.bias);
    f("head.weight", {opt_.num_classes, D}, w.head.weight);
    f("head.bias", {opt_.num_classes}, w.head.bias);
  }

  explicit VisionTransformer(Options opt = Options{}) : opt_(opt), rng_(mix(opt.seed)) {
    if (opt.num_classes < 1) throw Error("a classifier needs at least one class");
    if (!(opt.drop_path >= 0 && opt.drop_path < 1)) throw Error("drop_path must be in [0, 1)");
    if (!(opt.label_smoothing >= 0 && opt.label_smoothing < 1)) throw Error("label_smoothing must be in [0, 1)");
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
  std::string norm_name() const { return opt_.global_pool ? "fc_norm" : "norm"; }
  Rng& rng() { return rng_; }
  void zero_grad() { grads_.set_zero(); }

  // The initialization of a fresh MAE encoder (xavier linears, sin-cos pos_embed, cls
  // N(0, 0.02)), with the fine-tuning head of main_finetune.py: weight N(0, 2e-5), bias 0.
  void initialize(std::uint64_t seed) {
    Rng r(seed);
    sincos_pos_embed_2d(w_.pos_embed, D, G);
    init_patch_embed(w_.patch_embed, patch_shape, D, r);
    for (Index i = 0; i < D; ++i) w_.cls_token[i] = static_cast<S>(0.02 * r.normal());
    for (auto& b : w_.blocks) init_block(b, block_shape, r);
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
  // Forward on a batch. training: drop path on (drawn from rng()). labels (N) may be null
  // (inference): then the loss is 0 and backward() is not allowed.
  S forward(const ImageBatch<S>& imgs, const int* labels, bool training = true) {
    check_images(imgs);
    const Index N = imgs.n;
    Workspace& ws = ws_;
    ws.reserve(N, opt_.num_classes);
    ws.N = N;
    ws.training = training;
    ws.has_labels = labels != nullptr;
    draw_drop_path(ws, N, training);
    // x0 = [cls_token, patch_embed(imgs)] + pos_embed                        (N, 1+L, D)
    patch_embed_forward(ws.x_patch.data(), ws.cols.data(), imgs.data, w_.patch_embed, N, patch_shape, D);
    S* x0 = ws.x[0].data();
    const S* xp = ws.x_patch.data();
    const S* pos = w_.pos_embed;
    const S* cls = w_.cls_token;
#pragma omp parallel for schedule(static)
    for (Index nt = 0; nt < N * T; ++nt) {
      const Index n = nt / T, t = nt % T;
      const S* src = t == 0 ? cls : xp + (n * L + t - 1) * D;
      for (Index d = 0; d < D; ++d) x0[nt * D + d] = src[d] + pos[t * D + d];
    }
    // blocks                                                                 (N, 1+L, D)
    for (Index b = 0; b < kDepth; ++b)
      block_forward(ws.x[b + 1].data(), ws.cache[b], ws.x[b].data(), w_.blocks[b], N, T, block_shape,
                    keep_attn(ws, b), keep_mlp(ws, b));
    // pooled = mean_{t>=1} x[:, t] (global_pool) or x[:, 0]                  (N, D)
    const S* xl = ws.x[kDepth].data();
    S* pooled = ws.pooled.data();
    for (Index n = 0; n < N; ++n) {
      S* out = pooled + n * D;
      if (opt_.global_pool) {
        for (Index d = 0; d < D; ++d) {
          S acc = 0;
          for (Index t = 1; t < T; ++t) acc += xl[(n * T + t) * D + d];
          out[d] = acc / static_cast<S>(L);
        }
      } else {
        std::copy(xl + n * T * D, xl + n * T * D + D, out);
      }
    }
    // feat = fc_norm(pooled) / norm(cls)                                      (N, D)
    layernorm_forward(ws.feat.data(), ws.feat_mean.data(), ws.feat_rstd.data(), pooled, w_.norm.weight, w_.norm.bias,
                      N, D);
    // logits = head(feat)                                                    (N, classes)
    linear_forward(ws.logits.data(), ws.feat.data(), w_.head.weight, w_.head.bias, N, D, opt_.num_classes);
    ws.loss = 0;
    if (labels) {
      std::copy(labels, labels + N, ws.labels.begin());
      ws.loss = cross_entropy_forward(ws.probs.data(), ws.logits.data(), labels, N, opt_.num_classes,
                                      opt_.label_smoothing);
    }
    has_forward_ = true;
    return ws.loss;
  }

  // Accumulate (+=) the gradient of dloss * loss into gradients().
  void backward(S dloss = S(1)) {
    if (!has_forward_ || !ws_.has_labels) throw Error("backward() needs a forward() with labels first");
    Workspace& ws = ws_;
    const Index N = ws.N, K = opt_.num_classes;
    ws.reserve_backward(N, K);
    Params& g = g_;
    // forward: loss = cross_entropy(logits, labels)
    zero(ws.d_logits.data(), N * K);
    cross_entropy_backward(ws.d_logits.data(), ws.probs.data(), ws.labels.data(), N, K, opt_.label_smoothing, dloss);
    // forward: logits = head(feat)
    zero(ws.d_feat.data(), N * D);
    linear_backward(ws.d_feat.data(), g.head.weight, g.head.bias, ws.d_logits.data(), ws.feat.data(), w_.head.weight,
                    N, D, K);
    // forward: feat = norm(pooled)
    zero(ws.d_pooled.data(), N * D);
    layernorm_backward(ws.d_pooled.data(), g.norm.weight, g.norm.bias, ws.d_feat.data(), ws.pooled.data(),
                       w_.norm.weight, ws.feat_mean.data(), ws.feat_rstd.data(), N, D);
    // forward: pooled = mean_{t>=1} x[:, t]   or   pooled = x[:, 0]
    S* dcur = ws.d_a.data();
    S* dprev = ws.d_b.data();
    zero(dcur, N * T * D);
    const S inv_L = S(1) / static_cast<S>(L);
#pragma omp parallel for schedule(static)
    for (Index n = 0; n < N; ++n) {
      const S* dp = ws.d_pooled.data() + n * D;
      if (opt_.global_pool) {
        for (Index t = 1; t < T; ++t)
          for (Index d = 0; d < D; ++d) dcur[(n * T + t) * D + d] += dp[d] * inv_L;
      } else {
        for (Index d = 0; d < D; ++d) dcur[n * T * D + d] += dp[d];
      }
    }
    // forward: x[b+1] = blocks[b](x[b])
    for (Index b = kDepth - 1; b >= 0; --b) {
      block_backward(dprev, g.blocks[b], ws.scratch, dcur, ws.x[b].data(), ws.cache[b], w_.blocks[b], N, T,
                     block_shape, Grad::overwrite, keep_attn(ws, b), keep_mlp(ws, b));
      std::swap(dcur, dprev);
    }
    // forward: x0[n, t] = (t == 0 ? cls_token : x_patch[n, t-1]) + pos_embed[t]
    S* dpos = g.pos_embed;
#pragma omp parallel for schedule(static)
    for (Index t = 0; t < T; ++t)  // each t on one thread, samples summed in order
      for (Index n = 0; n < N; ++n)
        for (Index d = 0; d < D; ++d) dpos[t * D + d] += dcur[(n * T + t) * D + d];
    for (Index n = 0; n < N; ++n)
      for (Index d = 0; d < D; ++d) g.cls_token[d] += dcur[n * T * D + d];
    S* dxp = ws.d_x_patch.data();
#pragma omp parallel for schedule(static)
    for (Index n = 0; n < N; ++n)
      std::copy(dcur + (n * T + 1) * D, dcur + (n + 1) * T * D, dxp + n * L * D);
    // forward: x_patch = patch_embed(imgs)
    patch_embed_backward<S>(nullptr, g.patch_embed, nullptr, dxp, ws.cols.data(), w_.patch_embed, N, patch_shape, D);
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
  ConstMatMap<S> probabilities() const { return ConstMatMap<S>(ws_.probs.data(), ws_.N, opt_.num_classes); }
  // The head's input (N, D): fc_norm(mean of patch tokens) or norm(x)[:, 0].
  ConstMatMap<S> features() const { return ConstMatMap<S>(ws_.feat.data(), ws_.N, D); }
  // The output of block b (b = 1..depth; 0: the embedded tokens), (N*(1+L), D), cls first.
  ConstMatMap<S> block_output(Index b) const {
    if (b < 0 || b > kDepth) throw Error("block_output: no block " + std::to_string(b));
    return ConstMatMap<S>(ws_.x[b].data(), ws_.N * T, D);
  }
  // The drop-path scales (N) of block b's attention (branch 0) or MLP (branch 1) branch in
  // the last forward: 0 or 1/(1 - rate) per sample; null when nothing was dropped.
  const S* drop_path_scales(Index b, int branch) const {
    return branch == 0 ? keep_attn(ws_, b) : keep_mlp(ws_, b);
  }
  // Class of each image of the last forward (argmax of the logits; the first on ties).
  void predictions(int* out) const {
    const Index K = opt_.num_classes;
    for (Index n = 0; n < ws_.N; ++n) {
      const S* z = ws_.logits.data() + n * K;
      out[n] = static_cast<int>(std::max_element(z, z + K) - z);
    }
  }

  // --- fine-tuning parameter groups (param_groups_lrd in util/lr_decay.py) --------------
  // Layer id: cls_token, pos_embed, patch_embed -> 0; blocks.i -> i + 1; the rest -> depth + 1.
  static Index layer_id(const std::string& name) {
    if (name == "cls_token" || name == "pos_embed" || name.rfind("patch_embed", 0) == 0) return 0;
    if (name.rfind("blocks.", 0) == 0) return std::stoll(name.substr(7)) + 1;
    return kDepth + 1;
  }
  // lr scale layer_decay^(depth + 1 - layer_id); no weight decay for 1-D tensors, cls_token and pos_embed.
  static ParamGroup param_group(const TensorInfo& t, double layer_decay) {
    const bool no_decay = t.shape.size() == 1 || t.name == "cls_token" || t.name == "pos_embed";
    return ParamGroup{!no_decay, std::pow(layer_decay, static_cast<double>(kDepth + 1 - layer_id(t.name)))};
  }

  // --- weights I/O ---------------------------------------------------------------------
  std::string name() const {
    return Cfg::name() + ",classes=" + std::to_string(opt_.num_classes) + (opt_.global_pool ? ",global_pool" : ",cls");
  }
  std::vector<safetensors::TensorOut> state_dict() const {
    std::vector<safetensors::TensorOut> out;
    for (const auto& t : params_.tensors())
      out.push_back(safetensors::TensorOut::of<S>(t.name, t.shape, params_.data() + t.offset));
    return out;
  }
  std::map<std::string, std::string> metadata() const {
    return {{"format", "pt"}, {"mae.config", Cfg::name()}, {"mae.classifier", name()}};
  }
  void save(const std::string& path) const { safetensors::save(path, state_dict(), metadata()); }
  void save(const std::string& path, std::map<std::string, std::string> extra) const {
    auto meta = metadata();
    meta.insert(extra.begin(), extra.end());
    safetensors::save(path, state_dict(), meta);
  }

  // A classifier checkpoint of this exact model (strict: every tensor, nothing else).
  void load(const std::string& path) {
    const safetensors::File f(path);
    auto it = f.metadata().find("mae.classifier");
    if (it != f.metadata().end() && it->second != name())
      f.fail("checkpoint is for another classifier (" + it->second + "); this one is " + name());
    std::vector<std::string> all;
    for (const auto& t : params_.tensors()) all.push_back(t.name);
    load_tensors(f, all, /*strict=*/true);
  }

  // The encoder from an MAE pretraining checkpoint (or any file with its tensors under the
  // official names): cls_token, pos_embed, patch_embed, blocks, and norm when the head uses
  // the cls token. The head and fc_norm keep their initialization. Extra tensors (the
  // decoder, optimizer state) are ignored; a missing or misshapen one is an error, and a
  // bad file changes nothing.
  void load_encoder(const std::string& path) {
    const safetensors::File f(path);
    MaskedAutoencoder<Cfg>::check_configuration(f);
    std::vector<std::string> names;
    for (const auto& t : params_.tensors())
      if (t.name.rfind("head.", 0) != 0 && t.name.rfind("fc_norm.", 0) != 0) names.push_back(t.name);
    for (const auto& [tname, e] : f.tensors())  // a deeper encoder would be silently cut
      if (tname.rfind("blocks.", 0) == 0 && std::stoll(tname.substr(7)) >= kDepth)
        f.fail("tensor '" + tname + "': the checkpoint's encoder is deeper than " + Cfg::name());
    load_tensors(f, names, /*strict=*/false);
  }

 private:
  static std::uint64_t mix(std::uint64_t s) { return s * 0x9e3779b97f4a7c15ull + 0x5851f42d4c957f2dull; }

  struct Workspace {
    Index N = 0;
    bool training = false, has_labels = false;
    S loss = 0;
    std::vector<S> keep;                         // depth x 2 x N drop-path scales
    std::vector<S> cols, x_patch;                // (N, L, C*p*p), (N, L, D)
    std::vector<std::vector<S>> x;               // depth+1 x (N, 1+L, D)
    std::vector<BlockCache<S>> cache = std::vector<BlockCache<S>>(kDepth);
    std::vector<S> pooled, feat, feat_mean, feat_rstd;  // (N, D) x2, (N) x2
    std::vector<S> logits, probs;                // (N, classes)
    std::vector<int> labels;                     // (N)
    BlockScratch<S> scratch;
    std::vector<S> d_logits, d_feat, d_pooled, d_a, d_b, d_x_patch;

    void reserve(Index n, Index K) {
      ensure(keep, kDepth * 2 * n), ensure(cols, n * L * C * p * p), ensure(x_patch, n * L * D);
      x.resize(kDepth + 1);
      for (auto& v : x) ensure(v, n * T * D);
      ensure(pooled, n * D), ensure(feat, n * D), ensure(feat_mean, n), ensure(feat_rstd, n);
      ensure(logits, n * K), ensure(probs, n * K);
      if (static_cast<Index>(labels.size()) < n) labels.resize(static_cast<std::size_t>(n));
    }
    void reserve_backward(Index n, Index K) {
      ensure(d_logits, n * K), ensure(d_feat, n * D), ensure(d_pooled, n * D);
      ensure(d_a, n * T * D), ensure(d_b, n * T * D), ensure(d_x_patch, n * L * D);
    }
  };

  double drop_rate(Index b) const {
    return kDepth > 1 ? opt_.drop_path * static_cast<double>(b) / static_cast<double>(kDepth - 1) : 0.0;
  }
  // timm's drop_path: keep = floor(1 - rate + U[0, 1)), scaled by 1 / (1 - rate)
  void draw_drop_path(Workspace& ws, Index N, bool training) {
    for (Index b = 0; b < kDepth; ++b) {
      const double rate = training ? drop_rate(b) : 0.0;
      for (Index i = 0; i < 2 * N; ++i)
        ws.keep[(b * 2) * N + i] = rate > 0 ? (rng_.uniform() >= rate ? static_cast<S>(1.0 / (1.0 - rate)) : S(0)) : S(1);
    }
  }
  const S* keep_attn(const Workspace& ws, Index b) const {
    return ws.training && drop_rate(b) > 0 ? ws.keep.data() + (b * 2) * ws.N : nullptr;
  }
  const S* keep_mlp(const Workspace& ws, Index b) const {
    return ws.training && drop_rate(b) > 0 ? ws.keep.data() + (b * 2 + 1) * ws.N : nullptr;
  }

  void check_images(const ImageBatch<S>& imgs) const {
    if (imgs.data == nullptr || imgs.n <= 0)
      throw Error("classifier: empty image batch (N = " + std::to_string(imgs.n) + ")");
    if (imgs.channels != C || imgs.height != Cfg::img_size || imgs.width != Cfg::img_size)
      throw Error("classifier: images are " + std::to_string(imgs.channels) + "x" + std::to_string(imgs.height) + "x" +
                  std::to_string(imgs.width) + " (CxHxW) but this model (" + Cfg::name() + ") takes " +
                  std::to_string(C) + "x" + std::to_string(Cfg::img_size) + "x" + std::to_string(Cfg::img_size));
  }

  // Reads the named tensors (all checked first, then copied); strict: the file has nothing else.
  void load_tensors(const safetensors::File& f, const std::vector<std::string>& names, bool strict) {
    std::vector<std::pair<const TensorInfo*, std::vector<S>>> staged;
    for (const auto& n : names) {
      const TensorInfo& t = params_.find(n);
      if (!f.contains(n)) f.fail("tensor '" + n + "' is missing (a checkpoint of another model?)");
      if (f.entry(n).shape != t.shape)
        f.fail("tensor '" + n + "' has shape " + shape_string(f.entry(n).shape) + " but " + name() + " expects " +
               shape_string(t.shape) + ": the checkpoint is for another configuration");
      staged.emplace_back(&t, std::vector<S>(static_cast<std::size_t>(t.size)));
      f.read(n, t.shape, staged.back().second.data());
    }
    if (strict)
      for (const auto& [n, e] : f.tensors())
        if (!params_.try_find(n)) f.fail("unexpected tensor '" + n + "' (not part of " + name() + ")");
    for (auto& [t, v] : staged) std::copy(v.begin(), v.end(), params_.data() + t->offset);
  }

  Options opt_;
  Rng rng_;
  TensorStore<S> params_, grads_;
  Params w_, g_;
  Workspace ws_;
  bool has_forward_ = false;
};

}  // namespace mae

#endif  // MAE_CLASSIFIER_HPP
