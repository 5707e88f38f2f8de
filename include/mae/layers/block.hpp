// mae/layers/block.hpp — the pre-norm transformer block of timm 0.3.2 (no dropout, no layer scale):
//
//   x_mid = x_in  + keep_attn[n] * proj(attention(qkv(norm1(x_in))))
//   x_out = x_mid + keep_mlp[n]  * fc2(gelu(fc1(norm2(x_mid))))
//
// keep_attn / keep_mlp (N) are drop path (stochastic depth) per sample: 0 or 1/(1 - rate).
// Pretraining passes none (all ones); fine-tuning draws them (classifier.hpp).
#ifndef MAE_LAYERS_BLOCK_HPP
#define MAE_LAYERS_BLOCK_HPP

#include "attention.hpp"
#include "../core/common.hpp"
#include "layernorm.hpp"
#include "linear.hpp"
#include "mlp.hpp"

#include <functional>
#include <string>
#include <vector>

namespace mae {

template <class S>
struct BlockParams {
  LayerNormParams<S> norm1;
  AttentionParams<S> attn;
  LayerNormParams<S> norm2;
  MlpParams<S> mlp;
};

struct BlockShape {
  Index dim;                              // D
  Index heads;                            // H
  Index hidden;                           // MLP width
  Precision precision = Precision::fp32;  // of the linear and attention products
};

// The same shape with the products in another precision.
inline constexpr BlockShape with_precision(BlockShape s, Precision p) {
  s.precision = p;
  return s;
}

// Calls f(name, shape, pointer&) for every tensor, with the state-dict names of timm.
template <class S, class F>
inline void visit_block(BlockParams<S>& b, const std::string& prefix, const BlockShape& s, F&& f) {
  const std::int64_t D = s.dim, Hd = s.hidden;
  f(prefix + "norm1.weight", {D}, b.norm1.weight);
  f(prefix + "norm1.bias", {D}, b.norm1.bias);
  f(prefix + "attn.qkv.weight", {3 * D, D}, b.attn.qkv.weight);
  f(prefix + "attn.qkv.bias", {3 * D}, b.attn.qkv.bias);
  f(prefix + "attn.proj.weight", {D, D}, b.attn.proj.weight);
  f(prefix + "attn.proj.bias", {D}, b.attn.proj.bias);
  f(prefix + "norm2.weight", {D}, b.norm2.weight);
  f(prefix + "norm2.bias", {D}, b.norm2.bias);
  f(prefix + "mlp.fc1.weight", {Hd, D}, b.mlp.fc1.weight);
  f(prefix + "mlp.fc1.bias", {Hd}, b.mlp.fc1.bias);
  f(prefix + "mlp.fc2.weight", {D, Hd}, b.mlp.fc2.weight);
  f(prefix + "mlp.fc2.bias", {D}, b.mlp.fc2.bias);
}

// The block's first tensor in a store (visit_block's order): its tensors run from there.
template <class S>
inline const S* first_tensor(const BlockParams<S>& b) {
  return b.norm1.weight;
}

// The reference initialization: every Linear xavier (qkv as one (3D, D) Linear), LayerNorms 1/0.
template <class S>
inline void init_block(BlockParams<S>& b, const BlockShape& s, Rng& r) {
  init_layernorm(b.norm1, s.dim);
  init_linear(b.attn.qkv, 3 * s.dim, s.dim, r);
  init_linear(b.attn.proj, s.dim, s.dim, r);
  init_layernorm(b.norm2, s.dim);
  init_linear(b.mlp.fc1, s.hidden, s.dim, r);
  init_linear(b.mlp.fc2, s.dim, s.hidden, r);
}

// What forward keeps for backward (x_in is the caller's: the previous block's output). The
// inputs of the four linear layers, which only their weight gradients read, are kept packed
// as those products' operands (KeptInput: in bf16, half the bytes); the forward computes them
// in scratch it reuses from block to block.
template <class S>
struct BlockCache {
  KeptInput<S> ln1;                   // (N*T, D): norm1(x_in), qkv's input
  std::vector<S> ln1_mean, ln1_rstd;  // (N*T), (N*T)
  std::vector<S> qkv;                 // (N*T, 3D)
  std::vector<S> att_stats;           // (N, H, T, 2): the softmax's (max, 1/sum) per row
  std::vector<S> att;                 // (N, H, T, T): the probabilities, where kept (short T)
  KeptInput<S> ctx;                   // (N*T, D): proj's input
  std::vector<S> x_mid;               // (N*T, D)
  KeptInput<S> ln2;                   // (N*T, D): norm2(x_mid), fc1's input
  std::vector<S> ln2_mean, ln2_rstd;  // (N*T), (N*T)
  std::vector<S> fc1;                 // (N*T, hidden), before GELU
  KeptInput<S> act;                   // (N*T, hidden), after GELU: fc2's input

  void reserve(Index N, Index T, const BlockShape& s) {
    const Index R = N * T;
    ensure(ln1_mean, R), ensure(ln1_rstd, R);
    ensure(qkv, R * 3 * s.dim), ensure(att_stats, N * s.heads * T * kAttentionStats);
    if (keeps_attention_probabilities(T, s.dim, s.heads)) ensure(att, N * s.heads * T * T);
    ensure(x_mid, R * s.dim), ensure(ln2_mean, R), ensure(ln2_rstd, R);
    ensure(fc1, R * s.hidden);
  }
};

namespace block_detail {
struct Rows;    // kernels::thread_buffer tags of block_forward's scratch: (N*T, D),
struct Hidden;  // and (N*T, hidden)
}  // namespace block_detail

// Gradient scratch shared by all blocks of the same shape (reused block after block).
template <class S>
struct BlockScratch {
  std::vector<S> dln, dx_mid, dctx, dqkv, dact, dfc1, dbranch;
  void reserve(Index N, Index T, const BlockShape& s, bool drop_path = false) {
    const Index R = N * T;
    ensure(dln, R * s.dim), ensure(dx_mid, R * s.dim), ensure(dctx, R * s.dim);
    if (drop_path) ensure(dbranch, R * s.dim);
    ensure(dqkv, R * 3 * s.dim);
    ensure(dact, R * s.hidden), ensure(dfc1, R * s.hidden);
  }
};

// y (N, T, D) = x (N, T, D) + keep[n] * branch (N, T, D), in place on branch; no keep: keep = 1
template <class S>
inline void add_residual(S* branch, const S* x, const S* keep, Index N, Index T, Index D) {
  const Index TD = T * D;
#pragma omp parallel for schedule(static)
  for (Index i = 0; i < N * TD; ++i) branch[i] = x[i] + (keep ? keep[i / TD] * branch[i] : branch[i]);
}

// dbranch (N, T, D) = keep[n] * dy: the gradient into a branch scaled by its drop-path keep
template <class S>
inline const S* scale_residual_grad(std::vector<S>& dbranch, const S* dy, const S* keep, Index N, Index T, Index D) {
  if (!keep) return dy;
  const Index TD = T * D;
  S* out = dbranch.data();
#pragma omp parallel for schedule(static)
  for (Index i = 0; i < N * TD; ++i) out[i] = keep[i / TD] * dy[i];
  return out;
}

// x_out (N, T, D) from x_in (N, T, D)
template <class S>
inline void block_forward(S* x_out, BlockCache<S>& c, const S* x_in, const BlockParams<S>& p, Index N, Index T,
                          const BlockShape& s, const S* keep_attn = nullptr, const S* keep_mlp = nullptr) {
  const Index R = N * T, D = s.dim, Hd = s.hidden;
  const auto linear = LinearForwardOptions<S>::in(s.precision);  // every product in the block's precision
  c.reserve(N, T, s);
  // ln1, ctx, ln2 in turn (each read only by the next product, which keeps it), and act
  S* const ln = kernels::thread_buffer<block_detail::Rows, S>(R * D);
  S* const act = kernels::thread_buffer<block_detail::Hidden, S>(R * Hd);
  // --- attention branch: x_mid = x_in + proj(attn(qkv(norm1(x_in))))
  S* const ln1 = ln;
  layernorm_forward(ln1, c.ln1_mean.data(), c.ln1_rstd.data(), x_in, p.norm1.weight, p.norm1.bias, R, D);
  linear_forward(c.qkv.data(), ln1, p.attn.qkv.weight, p.attn.qkv.bias, R, D, 3 * D, linear.keeping(c.ln1));
  S* const ctx = ln;
  S* const att = keeps_attention_probabilities(T, D, s.heads) ? c.att.data() : nullptr;  // (N, H, T, T), or none
  attention_forward(ctx, c.att_stats.data(), c.qkv.data(), N, T, D, s.heads, s.precision, att);  // (R, D)
  S* x_mid = c.x_mid.data();
  if (keep_attn) {  // drop path scales the branch before the residual add
    linear_forward(x_mid, ctx, p.attn.proj.weight, p.attn.proj.bias, R, D, D, linear.keeping(c.ctx));
    add_residual(x_mid, x_in, keep_attn, N, T, D);
  } else {  // the residual add fused into the product: x_mid = x_in + b + ctx Wproj^T
    linear_forward(x_mid, ctx, p.attn.proj.weight, p.attn.proj.bias, R, D, D, linear.plus(x_in).keeping(c.ctx));
  }
  // --- MLP branch: x_out = x_mid + fc2(gelu(fc1(norm2(x_mid))))
  S* const ln2 = ln;
  layernorm_forward(ln2, c.ln2_mean.data(), c.ln2_rstd.data(), x_mid, p.norm2.weight, p.norm2.bias, R, D);
  // fc1 (R, hidden), and act = gelu(fc1) on each block of it as soon as it is computed
  const auto gelu = [&](Index r0, Index nr, Index j0, Index nc) {
    for (Index r = r0; r < r0 + nr; ++r) gelu_forward(act + r * Hd + j0, c.fc1.data() + r * Hd + j0, nc);
  };
  linear_forward(c.fc1.data(), ln2, p.mlp.fc1.weight, p.mlp.fc1.bias, R, D, Hd, linear.then(gelu).keeping(c.ln2));
  if (keep_mlp) {
    linear_forward(x_out, act, p.mlp.fc2.weight, p.mlp.fc2.bias, R, Hd, D, linear.keeping(c.act));
    add_residual(x_out, x_mid, keep_mlp, N, T, D);
  } else {
    linear_forward(x_out, act, p.mlp.fc2.weight, p.mlp.fc2.bias, R, Hd, D, linear.plus(x_mid).keeping(c.act));
  }
}

// dx_in (N, T, D) += the gradient of <x_out, dx_out> (assigned with dx_mode Grad::assign);
// parameter gradients g +=.
template <class S>
inline void block_backward(S* dx_in, BlockParams<S>& g, BlockScratch<S>& w, const S* dx_out, const S* x_in,
                           const BlockCache<S>& c, const BlockParams<S>& p, Index N, Index T, const BlockShape& s,
                           Grad dx_mode = Grad::accumulate, const nondeduced<S>* keep_attn = nullptr,
                           const nondeduced<S>* keep_mlp = nullptr) {
  const Index R = N * T, D = s.dim, Hd = s.hidden;
  // every product in the block's precision; the input gradients are scratch here
  const auto linear = LinearBackwardOptions::in(s.precision).assigning();
  w.reserve(N, T, s, keep_attn || keep_mlp);
  S* dx_mid = w.dx_mid.data();
  // forward: x_out = ... fc2(act)   =>   dact = dbranch W2;  and, on each block of dact as soon
  // as it is computed, forward: act = gelu(fc1)   =>   dfc1 = dact * gelu'(fc1)
  const auto gelu_grad = [&](Index r0, Index nr, Index j0, Index nc) {
    for (Index r = r0; r < r0 + nr; ++r)
      gelu_backward(w.dfc1.data() + r * Hd + j0, c.fc1.data() + r * Hd + j0, w.dact.data() + r * Hd + j0, nc,
                    Grad::assign);
  };
  linear_backward(w.dact.data(), g.mlp.fc2.weight, g.mlp.fc2.bias,
                  scale_residual_grad(w.dbranch, dx_out, keep_mlp, N, T, D), c.act, p.mlp.fc2.weight, R, Hd, D,
                  linear.then(gelu_grad));
  // forward: fc1 = ln2 W1^T + b1
  linear_backward(w.dln.data(), g.mlp.fc1.weight, g.mlp.fc1.bias, w.dfc1.data(), c.ln2, p.mlp.fc1.weight, R, D, Hd,
                  linear);
  // forward: ln2 = norm2(x_mid), and x_out = x_mid + keep_mlp * fc2(act)
  //   =>   dx_mid = dx_out + (through norm2)
  layernorm_backward(dx_mid, g.norm2.weight, g.norm2.bias, w.dln.data(), c.x_mid.data(), p.norm2.weight,
                     c.ln2_mean.data(), c.ln2_rstd.data(), R, D, dx_out);
  // forward: x_mid = x_in + keep_attn * proj(ctx)   =>   dx_in += dx_mid + (through the attention
  // branch; with Grad::assign, dx_in = dx_mid + ... in norm1's pass below)
  if (dx_mode == Grad::accumulate) {
#pragma omp parallel for schedule(static)
    for (Index i = 0; i < R * D; ++i) dx_in[i] += dx_mid[i];
  }
  // forward: x_mid = ... proj(ctx)
  linear_backward(w.dctx.data(), g.attn.proj.weight, g.attn.proj.bias,
                  scale_residual_grad(w.dbranch, dx_mid, keep_attn, N, T, D), c.ctx, p.attn.proj.weight, R, D, D,
                  linear);
  // forward: ctx = attention(qkv)
  attention_backward(w.dqkv.data(), w.dctx.data(), c.qkv.data(), c.att_stats.data(), N, T, D, s.heads, Grad::assign,
                     s.precision, keeps_attention_probabilities(T, D, s.heads) ? c.att.data() : nullptr);
  // forward: qkv = ln1 Wqkv^T + bqkv
  linear_backward(w.dln.data(), g.attn.qkv.weight, g.attn.qkv.bias, w.dqkv.data(), c.ln1, p.attn.qkv.weight, R, D,
                  3 * D, linear);
  // forward: ln1 = norm1(x_in)
  layernorm_backward(dx_in, g.norm1.weight, g.norm1.bias, w.dln.data(), x_in, p.norm1.weight, c.ln1_mean.data(),
                     c.ln1_rstd.data(), R, D, dx_mode == Grad::assign ? dx_mid : nullptr);
}

// A stack of blocks, x[b + 1] = blocks[b](x[b]) for b < depth: the encoder's and the decoder's.
template <class S>
struct StackActivations {
  std::vector<std::vector<S>> x;  // depth+1 x (N, T, D): x[0] is the stack's input, set by the caller
  std::vector<BlockCache<S>> cache;
  void reserve(Index depth, Index N, Index T, Index D) {
    x.resize(static_cast<std::size_t>(depth + 1));
    cache.resize(static_cast<std::size_t>(depth));
    for (auto& v : x) ensure(v, N * T * D);
  }
  S* input() { return x.front().data(); }
  const S* output() const { return x.back().data(); }
};

// Drop-path scales of a stack: keep[2 b] (attention) and keep[2 b + 1] (MLP) of block b, each
// null (nothing dropped) or (N) per-sample scales; a null keep: none anywhere.
template <class S>
inline const S* branch_keep(const S* const* keep, Index b, int branch) {
  return keep ? keep[2 * b + branch] : nullptr;
}

// a.x[depth] from a.x[0]
template <class S>
inline void stack_forward(StackActivations<S>& a, const std::vector<BlockParams<S>>& p, Index N, Index T,
                          const BlockShape& s, const S* const* keep = nullptr) {
  for (std::size_t b = 0; b < p.size(); ++b)
    block_forward(a.x[b + 1].data(), a.cache[b], a.x[b].data(), p[b], N, T, s, branch_keep(keep, b, 0),
                  branch_keep(keep, b, 1));
}

// The gradient at x[0] from dx_out, the gradient at x[depth]: returned, in buf_a or buf_b
// (N, T, D each, used in turn); parameter gradients g +=. done(b), if given, runs as soon as
// block b's gradients are final (last block first).
template <class S>
inline const S* stack_backward(std::vector<BlockParams<S>>& g, BlockScratch<S>& w, S* buf_a, S* buf_b, const S* dx_out,
                               const StackActivations<S>& a, const std::vector<BlockParams<S>>& p, Index N, Index T,
                               const BlockShape& s, const S* const* keep = nullptr,
                               const std::function<void(Index b)>& done = {}) {
  const S* dcur = dx_out;
  S* dprev = buf_a;
  for (Index b = static_cast<Index>(p.size()) - 1; b >= 0; --b) {
    // forward: x[b+1] = blocks[b](x[b])
    block_backward(dprev, g[b], w, dcur, a.x[b].data(), a.cache[b], p[b], N, T, s, Grad::assign,
                   branch_keep(keep, b, 0), branch_keep(keep, b, 1));
    if (done) done(b);
    dcur = dprev;
    dprev = dprev == buf_a ? buf_b : buf_a;
  }
  return dcur;
}

}  // namespace mae

#endif  // MAE_LAYERS_BLOCK_HPP
