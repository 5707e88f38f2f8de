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

#include <cmath>

namespace mae {

template <class S>
struct AttentionParams {
  LinearParams<S> qkv;   // (3D, D), (3D)
  LinearParams<S> proj;  // (D, D), (D)
};

// The core, between the two linears: ctx (N, T, D), att (N, H, T, T) from qkv (N, T, 3D).
template <class S>
inline void attention_forward(S* ctx, S* att, const S* qkv, Index N, Index T, Index D, Index H) {
  const Index hd = D / H;
  const S scale = static_cast<S>(1.0 / std::sqrt(static_cast<double>(hd)));
#pragma omp parallel for schedule(static)
  for (Index nh = 0; nh < N * H; ++nh) {
    const Index n = nh / H, h = nh % H;
    const S* base = qkv + n * T * 3 * D + h * hd;
    const ConstStridedMap<S> q(base, T, hd, Eigen::OuterStride<>(3 * D));          // (T, hd)
    const ConstStridedMap<S> k(base + D, T, hd, Eigen::OuterStride<>(3 * D));      // (T, hd)
    const ConstStridedMap<S> v(base + 2 * D, T, hd, Eigen::OuterStride<>(3 * D));  // (T, hd)
    MatMap<S> a(att + nh * T * T, T, T);                                            // (T, T)
    StridedMap<S> o(ctx + n * T * D + h * hd, T, hd, Eigen::OuterStride<>(D));      // (T, hd)
    a.noalias() = (q * k.transpose()) * scale;
    for (Index i = 0; i < T; ++i) {  // softmax over keys: exp(s - max) / sum
      S* row = a.data() + i * T;
      const S mx = ConstRowVecMap<S>(row, T).maxCoeff();
      for (Index j = 0; j < T; j += kBlock16) {
        const Index m = std::min(kBlock16, T - j);
        store16<S>(row + j, (load16(row + j, m) - mx).exp(), m);
      }
      const S inv = S(1) / sum16<S>(T, [&](Index j) { return row[j]; });
      for (Index j = 0; j < T; ++j) row[j] *= inv;
    }
    o.noalias() = a * v;
  }
}

// Gradient of attention_forward: dqkv (N, T, 3D) += (or = with Grad::overwrite). datt
// (N, H, T, T) is scratch.
template <class S>
inline void attention_backward(S* dqkv, S* datt, const S* dctx, const S* qkv, const S* att, Index N, Index T,
                               Index D, Index H, Grad mode = Grad::accumulate) {
  const Index hd = D / H;
  const S scale = static_cast<S>(1.0 / std::sqrt(static_cast<double>(hd)));
#pragma omp parallel for schedule(static)
  for (Index nh = 0; nh < N * H; ++nh) {
    const Index n = nh / H, h = nh % H;
    const S* base = qkv + n * T * 3 * D + h * hd;
    S* dbase = dqkv + n * T * 3 * D + h * hd;
    const ConstStridedMap<S> q(base, T, hd, Eigen::OuterStride<>(3 * D));
    const ConstStridedMap<S> k(base + D, T, hd, Eigen::OuterStride<>(3 * D));
    const ConstStridedMap<S> v(base + 2 * D, T, hd, Eigen::OuterStride<>(3 * D));
    StridedMap<S> dq(dbase, T, hd, Eigen::OuterStride<>(3 * D));
    StridedMap<S> dk(dbase + D, T, hd, Eigen::OuterStride<>(3 * D));
    StridedMap<S> dv(dbase + 2 * D, T, hd, Eigen::OuterStride<>(3 * D));
    const ConstMatMap<S> a(att + nh * T * T, T, T);
    MatMap<S> da(datt + nh * T * T, T, T);
    const ConstStridedMap<S> dout(dctx + n * T * D + h * hd, T, hd, Eigen::OuterStride<>(D));
    // forward: o = a v   =>   da = do v^T,  dv += a^T do
    da.noalias() = dout * v.transpose();
    if (mode == Grad::overwrite)
      dv.noalias() = a.transpose() * dout;
    else
      dv.noalias() += a.transpose() * dout;
    // forward: a = softmax(s) row-wise   =>   ds = a * (da - sum_j(da * a))   (in place)
    for (Index i = 0; i < T; ++i) {
      const S* ar = a.data() + i * T;
      S* dr = da.data() + i * T;
      const S dot = sum16<S>(T, [&](Index j) { return dr[j] * ar[j]; });
      for (Index j = 0; j < T; ++j) dr[j] = ar[j] * (dr[j] - dot);
    }
    // forward: s = q k^T * scale   =>   dq += ds k * scale,  dk += ds^T q * scale
    if (mode == Grad::overwrite) {
      dq.noalias() = (da * k) * scale;
      dk.noalias() = (da.transpose() * q) * scale;
    } else {
      dq.noalias() += (da * k) * scale;
      dk.noalias() += (da.transpose() * q) * scale;
    }
  }
}

}  // namespace mae

#endif  // MAE_ATTENTION_HPP
