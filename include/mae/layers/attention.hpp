// mae/layers/attention.hpp — multi-head self-attention as timm 0.3.2 (fused qkv, [q | k | v]).
//
//   qkv  = x Wqkv^T + bqkv                     (N, T, 3D): [q | k | v], heads contiguous in each
//   att  = softmax(q_h k_h^T * hd^-0.5)        (N, H, T, T), softmax over keys (last axis)
//   ctx  = att v_h, heads concatenated         (N, T, D)
//   out  = ctx Wproj^T + bproj                 (N, T, D)
//
// The core runs in one pass per (sample, head): scores, softmax and the product with v per
// block of query rows in L1, the (T, T) probabilities never written out. Forward keeps two
// numbers per row, the softmax's max and 1/sum (stats, (N, H, T, 2)); backward and
// attention_probabilities recompute the probabilities from q, k and them with the same
// operations in the same order, so they are the forward's bit for bit (as PyTorch's CPU flash
// kernel keeps the logsumexp; here max and 1/sum, so that nothing is rounded differently).
// Where they are small (keeps_attention_probabilities: short sequences) a block asks the
// forward to keep the probabilities too, and its backward reads them instead: the same bits.
#ifndef MAE_LAYERS_ATTENTION_HPP
#define MAE_LAYERS_ATTENTION_HPP

#include "../core/common.hpp"
#include "../kernels/elementwise.hpp"
#include "../kernels/small_gemm.hpp"
#include "linear.hpp"

#include <cmath>
#include <type_traits>

namespace mae {

template <class S>
struct AttentionParams {
  LinearParams<S> qkv;   // (3D, D), (3D)
  LinearParams<S> proj;  // (D, D), (D)
};

// GCC 12 with AVX-512 warns "'__Y' is used uninitialized" inside Eigen's vectorized exp (as
// in mlp.hpp): silenced for exp_row only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

// row[0..T) = exp(row - mx) in place; returns their sum (kSum), summed in 16 lanes on the way
// (lane j % 16, then Eigen's fixed reduction of the 16 lanes): an order fixed by T alone.
// Without kSum (a recomputation that has the sum already) the same values, and 0.
template <class S, bool kSum = true>
inline S exp_row(S* row, Index T, S mx) {
  using namespace kernels;
  Block16<S> lanes = Block16<S>::Zero();
  for (Index j = 0; j < T; j += kBlock16) {
    const Index m = std::min(kBlock16, T - j);
    Block16<S> e = (load16(row + j, m) - mx).exp();
    store16<S>(row + j, e, m);
    if constexpr (kSum) {
      for (Index t = m; t < kBlock16; ++t) e[t] = S(0);  // the padding of a last partial block
      lanes += e;
    }
  }
  return kSum ? lanes.sum() : S(0);
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// row[0..T) = exp(row - max) / sum, in place; stats[0..2) = (max, 1/sum), from which
// softmax_row_again gives the same values from the same row.
template <class S>
inline void softmax_row(S* row, Index T, S* stats) {
  const S mx = ConstRowVecMap<S>(row, T).maxCoeff();
  const S inv = S(1) / exp_row(row, T, mx);
  for (Index j = 0; j < T; ++j) row[j] *= inv;
  stats[0] = mx, stats[1] = inv;
}
template <class S>
inline void softmax_row_again(S* row, Index T, const S* stats) {
  exp_row<S, false>(row, T, stats[0]);
  for (Index j = 0; j < T; ++j) row[j] *= stats[1];
}

// Query rows per block: a block's rows of scores (rows x T) are computed, normalized and
// multiplied by v while they are in L1. Whole (T, T) products went through L2 between the
// three steps, their tiles' stores missing L1 (T = 197: q k^T at a third of a v's rate).
template <class S>
inline constexpr Index kAttentionRows = 4 * kernels::kTileRows;

// Per-thread buffers (kernels::thread_buffer): k^T, v, v^T and k packed for
// small_gemm_packed, a block of rows of probabilities (forward), the (T, T) probabilities and
// the gradient of the scores (backward).
struct AttentionKeys;
struct AttentionValues;
struct AttentionKeysAgain;
struct AttentionScores;
struct AttentionProbabilities;

// Values per row of the softmax statistics attention_forward keeps: (max, 1/sum).
inline constexpr Index kAttentionStats = 2;

namespace attention_detail {
template <class S, bool Bf16>
void forward(S* ctx, S* stats, S* att, const S* qkv, Index N, Index T, Index D, Index H);
template <class S, bool Bf16>
void probabilities(S* att, const S* qkv, const S* stats, Index N, Index T, Index D, Index H);
template <class S, bool Bf16>
void backward(S* dqkv, const S* dctx, const S* qkv, const S* stats, const S* att, Index N, Index T, Index D, Index H,
              Grad mode);
}  // namespace attention_detail

// The core, between the two linears: ctx (N, T, D) and the softmax's row statistics stats
// (N, H, T, kAttentionStats) from qkv (N, T, 3D). Per sample n and head h, q, k, v are (T, hd)
// views into qkv with row stride 3D; the products are small_gemm calls (a transposed operand is
// just swapped strides), k^T and v packed once per head for every block of query rows.
// Precision::bf16: the four products' operands rounded to bf16, fp32 sums (the softmax stays
// fp32). With att (N, H, T, T), the probabilities are also kept there, for a backward that
// then reads them instead of recomputing them (keeps_attention_probabilities says when).
template <class S>
inline void attention_forward(S* ctx, S* stats, const S* qkv, Index N, Index T, Index D, Index H,
                              Precision precision = Precision::fp32, S* att = nullptr) {
  dispatch_precision<S>(precision, [&](auto bf16) {
    attention_detail::forward<S, decltype(bf16)::value>(ctx, stats, att, qkv, N, T, D, H);
  });
}

// Whether a block keeps its attention probabilities for the backward rather than recomputing
// them there: when they take no more room than the qkv it keeps anyway (H T <= 3 D values per
// token), as for short sequences (an encoder's visible tokens); long ones (a decoder's 1 + L
// at 224 pixels) are recomputed, their (T, T) per head being what the recomputation saves.
inline bool keeps_attention_probabilities(Index T, Index D, Index H) { return H * T <= 3 * D; }

// The probabilities att (N, H, T, T) of the attention_forward that gave stats, recomputed: the
// forward's values bit for bit (with the same qkv and precision).
template <class S>
inline void attention_probabilities(S* att, const S* qkv, const S* stats, Index N, Index T, Index D, Index H,
                                    Precision precision = Precision::fp32) {
  dispatch_precision<S>(precision, [&](auto bf16) {
    attention_detail::probabilities<S, decltype(bf16)::value>(att, qkv, stats, N, T, D, H);
  });
}

// Gradient of attention_forward: dqkv (N, T, 3D) += (or = with Grad::assign), from the qkv
// and stats of its forward, and the probabilities it kept (att) if it did: the same bits.
template <class S>
inline void attention_backward(S* dqkv, const S* dctx, const S* qkv, const S* stats, Index N, Index T, Index D, Index H,
                               Grad mode = Grad::accumulate, Precision precision = Precision::fp32,
                               const S* att = nullptr) {
  dispatch_precision<S>(precision, [&](auto bf16) {
    attention_detail::backward<S, decltype(bf16)::value>(dqkv, dctx, qkv, stats, att, N, T, D, H, mode);
  });
}

template <class S, bool Bf16>
inline void attention_detail::forward(S* ctx, S* stats, S* att, const S* qkv, Index N, Index T, Index D, Index H) {
  using namespace kernels;
  const Index hd = D / H, ld = 3 * D, R = kAttentionRows<S>;
  const S scale = static_cast<S>(1.0 / std::sqrt(static_cast<double>(hd)));
#pragma omp parallel
  {
    auto* const kt =
        kernels::thread_buffer<AttentionKeys, SmallPacked<S, Bf16>>(small_gemm_packed_size<S>(hd, T));  // k^T (hd, T)
    auto* const vp =
        kernels::thread_buffer<AttentionValues, SmallPacked<S, Bf16>>(small_gemm_packed_size<S>(T, hd));  // v (T, hd)
    S* const ai = kernels::thread_buffer<AttentionScores, S>(R * T);  // a block of rows of a (R, T)
#pragma omp for schedule(static)
    for (Index nh = 0; nh < N * H; ++nh) {
      const Index n = nh / H, h = nh % H;
      const S* q = qkv + n * T * ld + h * hd;  // (T, hd), row stride 3D
      const S* k = q + D;                      // (T, hd)
      const S* v = q + 2 * D;                  // (T, hd)
      S* st = stats + nh * T * kAttentionStats;  // (T, 2)
      S* o = ctx + n * T * D + h * hd;           // (T, hd), row stride D
      small_gemm_pack<S, Bf16>(kt, k, 1, ld, hd, T);
      small_gemm_pack<S, Bf16>(vp, v, ld, 1, T, hd);
      for (Index i0 = 0; i0 < T; i0 += R) {  // query rows [i0, i0 + m)
        const Index m = std::min(R, T - i0);
        S* const a = att ? att + nh * T * T + i0 * T : ai;  // the rows kept, or scratch
        // a = q k^T * scale                                              (m, T)
        small_gemm_packed<S, Bf16>(a, T, q + i0 * ld, ld, 1, kt, m, T, hd, scale, Out::assign);
        for (Index i = 0; i < m; ++i)  // softmax over keys
          softmax_row(a + i * T, T, st + (i0 + i) * kAttentionStats);
        // o = a v                                                        (m, hd)
        small_gemm_packed<S, Bf16>(o + i0 * D, D, a, T, 1, vp, m, hd, T, S(1), Out::assign);
      }
    }
  }
}

namespace attention_detail {
// Rows [i0, i0 + m) of one head's probabilities a (T, T), from q, k^T packed and the stats:
// the forward's lines `a = q k^T * scale` and softmax, on the same blocks of rows.
template <class S, bool Bf16>
inline void probability_rows(S* a, const S* q, Index ld, const kernels::SmallPacked<S, Bf16>* kt, const S* st, Index i0,
                             Index m, Index T, Index hd, S scale) {
  kernels::small_gemm_packed<S, Bf16>(a + i0 * T, T, q + i0 * ld, ld, 1, kt, m, T, hd, scale, kernels::Out::assign);
  for (Index i = i0; i < i0 + m; ++i) softmax_row_again(a + i * T, T, st + i * kAttentionStats);
}
}  // namespace attention_detail

template <class S, bool Bf16>
inline void attention_detail::probabilities(S* att, const S* qkv, const S* stats, Index N, Index T, Index D, Index H) {
  using namespace kernels;
  const Index hd = D / H, ld = 3 * D;
  const S scale = static_cast<S>(1.0 / std::sqrt(static_cast<double>(hd)));
#pragma omp parallel
  {
    auto* const kt =
        kernels::thread_buffer<AttentionKeys, SmallPacked<S, Bf16>>(small_gemm_packed_size<S>(hd, T));  // k^T (hd, T)
#pragma omp for schedule(static)
    for (Index nh = 0; nh < N * H; ++nh) {
      const Index n = nh / H, h = nh % H;
      const S* q = qkv + n * T * ld + h * hd;
      small_gemm_pack<S, Bf16>(kt, q + D, 1, ld, hd, T);
      for (Index i0 = 0; i0 < T; i0 += kAttentionRows<S>)
        probability_rows<S, Bf16>(att + nh * T * T, q, ld, kt, stats + nh * T * kAttentionStats, i0,
                                  std::min(kAttentionRows<S>, T - i0), T, hd, scale);
    }
  }
}

template <class S, bool Bf16>
inline void attention_detail::backward(S* dqkv, const S* dctx, const S* qkv, const S* stats, const S* att, Index N,
                                       Index T, Index D, Index H, Grad mode) {
  using namespace kernels;
  const Out out_mode = mode == Grad::assign ? Out::assign : Out::add;
  const Index hd = D / H, ld = 3 * D, R = kAttentionRows<S>;
  const S scale = static_cast<S>(1.0 / std::sqrt(static_cast<double>(hd)));
#pragma omp parallel
  {
    auto* const vt =
        kernels::thread_buffer<AttentionKeys, SmallPacked<S, Bf16>>(small_gemm_packed_size<S>(hd, T));  // v^T (hd, T)
    auto* const kp =
        kernels::thread_buffer<AttentionValues, SmallPacked<S, Bf16>>(small_gemm_packed_size<S>(T, hd));  // k (T, hd)
    // k^T (hd, T) and the probabilities (T, T), for recomputing them where they were not kept
    auto* const kt =
        att ? nullptr
            : kernels::thread_buffer<AttentionKeysAgain, SmallPacked<S, Bf16>>(small_gemm_packed_size<S>(hd, T));
    S* const a_again = att ? nullptr : kernels::thread_buffer<AttentionProbabilities, S>(T * T);
    S* const da = kernels::thread_buffer<AttentionScores, S>(T * T);        // (T, T): da, then ds in place
#pragma omp for schedule(static)
    for (Index nh = 0; nh < N * H; ++nh) {
      const Index n = nh / H, h = nh % H;
      const S* q = qkv + n * T * ld + h * hd;
      const S* k = q + D;
      const S* v = q + 2 * D;
      S* dq = dqkv + n * T * ld + h * hd;
      S* dk = dq + D;
      S* dv = dq + 2 * D;
      const S* dout = dctx + n * T * D + h * hd;  // (T, hd), row stride D
      const S* const a = att ? att + nh * T * T : a_again;  // (T, T): the forward's a, kept or recomputed
      if (!att) small_gemm_pack<S, Bf16>(kt, k, 1, ld, hd, T);
      small_gemm_pack<S, Bf16>(vt, v, 1, ld, hd, T);
      small_gemm_pack<S, Bf16>(kp, k, ld, 1, T, hd);
      for (Index i0 = 0; i0 < T; i0 += R) {  // query rows [i0, i0 + m)
        const Index m = std::min(R, T - i0);
        S* dr0 = da + i0 * T;  // (m, T)
        // a's rows, recomputed where not kept: the forward's bits
        if (!att) probability_rows<S, Bf16>(a_again, q, ld, kt, stats + nh * T * kAttentionStats, i0, m, T, hd, scale);
        // forward: o = a v   =>   da = do v^T
        small_gemm_packed<S, Bf16>(dr0, T, dout + i0 * D, D, 1, vt, m, T, hd, S(1), Out::assign);
        // forward: a = softmax(s) row-wise   =>   ds = a * (da - sum_j(da * a))   (in place)
        for (Index i = i0; i < i0 + m; ++i) {
          const S* ar = a + i * T;
          S* dr = da + i * T;
          const S dot = sum16<S>(T, [&](Index j) { return dr[j] * ar[j]; });
          for (Index j = 0; j < T; ++j) dr[j] = ar[j] * (dr[j] - dot);
        }
        // forward: s = q k^T * scale   =>   dq += ds k * scale
        small_gemm_packed<S, Bf16>(dq + i0 * ld, ld, dr0, T, 1, kp, m, hd, T, scale, out_mode);
      }
      // forward: o = a v   =>   dv += a^T do
      small_gemm<S, Bf16>(dv, ld, a, 1, T, dout, D, 1, T, hd, T, S(1), out_mode);
      // forward: s = q k^T * scale   =>   dk += ds^T q * scale
      small_gemm<S, Bf16>(dk, ld, da, 1, T, q, ld, 1, T, hd, T, scale, out_mode);
    }
  }
}

}  // namespace mae

#endif  // MAE_LAYERS_ATTENTION_HPP
