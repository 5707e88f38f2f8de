// mae/layers/tokens.hpp — the token operations of the two models, each a forward/backward pair:
//
//   embed_tokens:    x (N, 1+K, D) = [cls_token + pos[0], x_patch + pos[1 + ids[n, k]]]
//                    (models_mae.py's forward_encoder after the masking; models_vit.py with
//                    every patch in order: ids = null, K = L)
//   unshuffle:       y (N, 1+L, D') = [emb_cls, unshuffle([emb_vis, mask_token x (L-K)])] + pos
//                    (forward_decoder: the mask tokens appended, then ids_restore)
//   pool_tokens:     f (N, D) = mean over t >= 1 of x[:, t] (global_pool), or x[:, 0] (cls)
//   drop_cls:        y (N, L, P) = x[:, 1:]
//
// They follow the layer contract (common.hpp): forward assigns, backward adds (+=) into every
// gradient it is given; Grad::assign on an input gradient assigns it instead. Sums over the
// batch (the cls and mask tokens, a trainable pos table) run over the samples in order.
#ifndef MAE_LAYERS_TOKENS_HPP
#define MAE_LAYERS_TOKENS_HPP

#include "../core/common.hpp"

#include <algorithm>
#include <cstdint>

namespace mae {

// x (N, 1+K, D) from x_patch (N, K, D), cls (D) and pos (1+L, D). ids (N, L): row k of image
// n is patch ids[n * L + k] (the masking's ids_keep); null: patch k (K = L).
template <class S>
inline void embed_tokens_forward(S* x, const S* x_patch, const S* cls, const S* pos, const std::int64_t* ids, Index N,
                                 Index K, Index L, Index D) {
  const Index T = 1 + K;
#pragma omp parallel for schedule(static)
  for (Index n = 0; n < N; ++n) {
    for (Index d = 0; d < D; ++d) x[n * T * D + d] = cls[d] + pos[d];
    for (Index k = 0; k < K; ++k) {
      const S* p = pos + (1 + (ids ? ids[n * L + k] : k)) * D;
      for (Index d = 0; d < D; ++d) x[(n * T + 1 + k) * D + d] = x_patch[(n * K + k) * D + d] + p[d];
    }
  }
}

// dx_patch (N, K, D) += dx[:, 1:] (= with Grad::assign);  dcls (D) += sum over n of dx[n, 0];
// dpos (1+L, D; may be null: a fixed table) += the rows of dx at their positions.
template <class S>
inline void embed_tokens_backward(S* dx_patch, S* dcls, S* dpos, const S* dx, const std::int64_t* ids, Index N, Index K,
                                  Index L, Index D, Grad dx_patch_mode = Grad::accumulate) {
  const Index T = 1 + K;
  // forward: x[n, 1 + k] = x_patch[n, k] + pos[1 + ids[n, k]]
#pragma omp parallel for schedule(static)
  for (Index n = 0; n < N; ++n) {
    const S* src = dx + (n * T + 1) * D;
    S* dst = dx_patch + n * K * D;
    if (dx_patch_mode == Grad::assign)
      std::copy(src, src + K * D, dst);
    else
      for (Index i = 0; i < K * D; ++i) dst[i] += src[i];
  }
  // forward: x[n, 0] = cls + pos[0]
  for (Index n = 0; n < N; ++n)
    for (Index d = 0; d < D; ++d) dcls[d] += dx[n * T * D + d];
  if (!dpos) return;
  if (!ids) {
#pragma omp parallel for schedule(static)
    for (Index t = 0; t < T; ++t)  // each row on one thread, samples summed in order
      for (Index n = 0; n < N; ++n)
        for (Index d = 0; d < D; ++d) dpos[t * D + d] += dx[(n * T + t) * D + d];
    return;
  }
  for (Index n = 0; n < N; ++n)
    for (Index t = 0; t < T; ++t) {
      S* dp = dpos + (t == 0 ? 0 : 1 + ids[n * L + t - 1]) * D;
      for (Index d = 0; d < D; ++d) dp[d] += dx[(n * T + t) * D + d];
    }
}

// y (N, 1+L, D) from emb (N, 1+K, D): row 0 is emb's cls row; row 1 + l is emb's visible row
// 1 + j when j = ids_restore[n, l] < K, else the mask token; then + pos (1+L, D).
template <class S>
inline void unshuffle_forward(S* y, const S* emb, const S* mask_token, const S* pos, const std::int64_t* ids_restore,
                              Index N, Index K, Index L, Index D) {
  const Index T = 1 + K, Ty = 1 + L;
#pragma omp parallel for schedule(static)
  for (Index nt = 0; nt < N * Ty; ++nt) {
    const Index n = nt / Ty, t = nt % Ty;
    const S* src = emb + n * T * D;  // cls row
    if (t > 0) {
      const Index j = ids_restore[n * L + (t - 1)];
      src = j < K ? emb + (n * T + 1 + j) * D : mask_token;
    }
    for (Index d = 0; d < D; ++d) y[nt * D + d] = src[d] + pos[t * D + d];
  }
}

// demb (N, 1+K, D) += (= with Grad::assign), dmask_token (D) += the gradient of unshuffle_forward
// (the fixed pos table gets none).
template <class S>
inline void unshuffle_backward(S* demb, S* dmask_token, const S* dy, const std::int64_t* ids_restore, Index N, Index K,
                               Index L, Index D, Grad demb_mode = Grad::accumulate) {
  const Index T = 1 + K, Ty = 1 + L;
  if (demb_mode == Grad::assign) zero(demb, N * T * D);
  for (Index n = 0; n < N; ++n) {  // sequential: the mask token's sum has one order
    const S* g = dy + n * Ty * D;
    S* de = demb + n * T * D;
    for (Index d = 0; d < D; ++d) de[d] += g[d];
    for (Index l = 0; l < L; ++l) {
      const Index j = ids_restore[n * L + l];
      S* dst = j < K ? de + (1 + j) * D : dmask_token;
      for (Index d = 0; d < D; ++d) dst[d] += g[(1 + l) * D + d];
    }
  }
}

// How a classifier turns tokens into one feature vector.
enum class Pool { mean_patches, cls };

// out (N, D) from x (N, T, D): the mean of rows 1..T-1 (Pool::mean_patches) or row 0 (Pool::cls).
template <class S>
inline void pool_tokens_forward(S* out, const S* x, Index N, Index T, Index D, Pool pool) {
  for (Index n = 0; n < N; ++n) {
    S* o = out + n * D;
    if (pool == Pool::cls) {
      std::copy(x + n * T * D, x + n * T * D + D, o);
      continue;
    }
    for (Index d = 0; d < D; ++d) {
      S acc = 0;
      for (Index t = 1; t < T; ++t) acc += x[(n * T + t) * D + d];
      o[d] = acc / static_cast<S>(T - 1);
    }
  }
}

// dx (N, T, D) += the gradient of pool_tokens_forward
template <class S>
inline void pool_tokens_backward(S* dx, const S* dout, Index N, Index T, Index D, Pool pool) {
  const S inv = S(1) / static_cast<S>(T - 1);
#pragma omp parallel for schedule(static)
  for (Index n = 0; n < N; ++n) {
    const S* g = dout + n * D;
    if (pool == Pool::cls) {
      for (Index d = 0; d < D; ++d) dx[n * T * D + d] += g[d];
      continue;
    }
    // forward: out = sum over t >= 1 of x[t] / (T - 1)
    for (Index t = 1; t < T; ++t)
      for (Index d = 0; d < D; ++d) dx[(n * T + t) * D + d] += g[d] * inv;
  }
}

// y (N, T-1, D) = x (N, T, D) without row 0 of each sample
template <class S>
inline void drop_cls_forward(S* y, const S* x, Index N, Index T, Index D) {
  for (Index n = 0; n < N; ++n) std::copy(x + (n * T + 1) * D, x + (n + 1) * T * D, y + n * (T - 1) * D);
}

// dx (N, T, D) += dy placed back at rows 1.. (= with Grad::assign: row 0 zero)
template <class S>
inline void drop_cls_backward(S* dx, const S* dy, Index N, Index T, Index D, Grad dx_mode = Grad::accumulate) {
  for (Index n = 0; n < N; ++n) {
    const S* g = dy + n * (T - 1) * D;
    S* o = dx + (n * T + 1) * D;
    if (dx_mode == Grad::assign) {
      std::fill(o - D, o, S(0));
      std::copy(g, g + (T - 1) * D, o);
    } else {
      for (Index i = 0; i < (T - 1) * D; ++i) o[i] += g[i];
    }
  }
}

}  // namespace mae

#endif  // MAE_LAYERS_TOKENS_HPP
