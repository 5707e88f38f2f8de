// mae/attention.hpp — multi-head self-attention as timm 0.3.2 (fused qkv, [q | k | v]).
//
//   qkv  = x Wqkv^T + bqkv                     (N, T, 3D): [q | k | v], heads contiguous in each
//   att  = softmax(q_h k_h^T * hd^-0.5)        (N, H, T, T), softmax over keys (last axis)
//   ctx  = att v_h, heads concatenated         (N, T, D)
//   out  = ctx Wproj^T + bproj                 (N, T, D)
#ifndef MAE_ATTENTION_HPP
#define MAE_ATTENTION_HPP

#include "common.hpp"
#include "linear.hpp"
#include "small_gemm.hpp"

#include <cmath>

namespace mae {

template <class S>
struct AttentionParams {
  LinearParams<S> qkv;   // (3D, D), (3D)
  LinearParams<S> proj;  // (D, D), (D)
};

// row[0..T) = exp(row - max) / sum, in place. The exponentials are summed in 16 lanes on the
// way (lane j % 16, then Eigen's fixed reduction of the 16 lanes): an order fixed by T alone.
template <class S>
inline void softmax_row(S* row, Index T) {
  const S mx = ConstRowVecMap<S>(row, T).maxCoeff();
  Block16<S> lanes = Block16<S>::Zero();
  for (Index j = 0; j < T; j += kBlock16) {
    const Index m = std::min(kBlock16, T - j);
    Block16<S> e = (load16(row + j, m) - mx).exp();
    for (Index t = m; t < kBlock16; ++t) e[t] = S(0);  // the padding of a last partial block
    store16<S>(row + j, e, m);
    lanes += e;
  }
  const S inv = S(1) / lanes.sum();
  for (Index j = 0; j < T; ++j) row[j] *= inv;
}

// The core, between the two linears: ctx (N, T, D), att (N, H, T, T) from qkv (N, T, 3D).
// Per sample n and head h, q, k, v are (T, hd) views into qkv with row stride 3D; the products
// are small_gemm calls (a transposed operand is just swapped strides).
template <class S>
inline void attention_forward(S* ctx, S* att, const S* qkv, Index N, Index T, Index D, Index H) {
  const Index hd = D / H, ld = 3 * D;
  const S scale = static_cast<S>(1.0 / std::sqrt(static_cast<double>(hd)));
#pragma omp parallel for schedule(static)
  for (Index nh = 0; nh < N * H; ++nh) {
    const Index n = nh / H, h = nh % H;
    const S* q = qkv + n * T * ld + h * hd;  // (T, hd), row stride 3D
    const S* k = q + D;                      // (T, hd)
    const S* v = q + 2 * D;                  // (T, hd)
    S* a = att + nh * T * T;                 // (T, T)
    S* o = ctx + n * T * D + h * hd;         // (T, hd), row stride D
    // a = q k^T * scale
    small_gemm(a, T, q, ld, 1, k, 1, ld, T, T, hd, scale, Grad::overwrite);
    for (Index i = 0; i < T; ++i) softmax_row(a + i * T, T);  // softmax over keys
    // o = a v
    small_gemm(o, D, a, T, 1, v, ld, 1, T, hd, T, S(1), Grad::overwrite);
  }
}

// Gradient of attention_forward: dqkv (N, T, 3D) += (or = with Grad::overwrite). datt
// (N, H, T, T) is scratch.
template <class S>
inline void attention_backward(S* dqkv, S* datt, const S* dctx, const S* qkv, const S* att, Index N, Index T,
                               Index D, Index H, Grad mode = Grad::accumulate) {
  const Index hd = D / H, ld = 3 * D;
  const S scale = static_cast<S>(1.0 / std::sqrt(static_cast<double>(hd)));
#pragma omp parallel for schedule(static)
  for (Index nh = 0; nh < N * H; ++nh) {
    const Index n = nh / H, h = nh % H;
    const S* q = qkv + n * T * ld + h * hd;
    const S* k = q + D;
    const S* v = q + 2 * D;
    S* dq = dqkv + n * T * ld + h * hd;
    S* dk = dq + D;
    S* dv = dq + 2 * D;
    const S* a = att + nh * T * T;
    S* da = datt + nh * T * T;
    const S* dout = dctx + n * T * D + h * hd;  // (T, hd), row stride D
    // forward: o = a v   =>   da = do v^T,  dv += a^T do
    small_gemm(da, T, dout, D, 1, v, 1, ld, T, T, hd, S(1), Grad::overwrite);
    small_gemm(dv, ld, a, 1, T, dout, D, 1, T, hd, T, S(1), mode);
    // forward: a = softmax(s) row-wise   =>   ds = a * (da - sum_j(da * a))   (in place)
    for (Index i = 0; i < T; ++i) {
      const S* ar = a + i * T;
      S* dr = da + i * T;
      const S dot = sum16<S>(T, [&](Index j) { return dr[j] * ar[j]; });
      for (Index j = 0; j < T; ++j) dr[j] = ar[j] * (dr[j] - dot);
    }
    // forward: s = q k^T * scale   =>   dq += ds k * scale,  dk += ds^T q * scale
    small_gemm(dq, ld, da, T, 1, k, ld, 1, T, hd, T, scale, mode);
    small_gemm(dk, ld, da, 1, T, q, ld, 1, T, hd, T, scale, mode);
  }
}

}  // namespace mae

#endif  // MAE_ATTENTION_HPP
