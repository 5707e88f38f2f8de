// mae/layers/patch.hpp — images to patches, two orders:
//
//  * patchify (the loss target, models_mae.py):  imgs (N, C, H, W) -> (N, L, p*p*C)
//      target[n, r*G + c, (i*p + j)*C + ch] = imgs[n, ch, r*p + i, c*p + j]
//    (tokens row-major over the grid, each patch ordered (i, j, channel), channel fastest);
//  * im2col for the patch embedding, a Conv2d(C, D, p, stride p) whose weight (D, C, p, p)
//    flattens a patch as (channel, i, j):
//      cols[n, r*G + c, (ch*p + i)*p + j] = imgs[n, ch, r*p + i, c*p + j]
//    so the embedding is a linear layer on cols with the conv weight viewed as (D, C*p*p).
#ifndef MAE_LAYERS_PATCH_HPP
#define MAE_LAYERS_PATCH_HPP

#include "../core/common.hpp"
#include "../core/images.hpp"
#include "linear.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

namespace mae {

struct PatchShape {
  Index channels;  // C
  Index patch;     // p
  Index grid;      // G (image side = G * p)
};

// out (N, L, p*p*C) from imgs (N, C, H, W), loss-target order (i, j, channel)
template <class S>
inline void patchify(S* out, const S* imgs, Index N, const PatchShape& s) {
  const Index C = s.channels, p = s.patch, G = s.grid, W = G * p, L = G * G, P = p * p * C;
#pragma omp parallel for schedule(static)
  for (Index nl = 0; nl < N * L; ++nl) {
    const Index n = nl / L, r = (nl % L) / G, c = nl % G;
    for (Index ch = 0; ch < C; ++ch)  // reads along the image's rows (p contiguous values)
      for (Index i = 0; i < p; ++i) {
        const S* src = imgs + ((n * C + ch) * W + r * p + i) * W + c * p;
        S* dst = out + nl * P + i * p * C + ch;
        for (Index j = 0; j < p; ++j) dst[j * C] = src[j];
      }
  }
}

// imgs (N, C, H, W) from x (N, L, p*p*C): the exact inverse of patchify
template <class S>
inline void unpatchify(S* imgs, const S* x, Index N, const PatchShape& s) {
  const Index C = s.channels, p = s.patch, G = s.grid, W = G * p, L = G * G, P = p * p * C;
#pragma omp parallel for schedule(static)
  for (Index nl = 0; nl < N * L; ++nl) {
    const Index n = nl / L, r = (nl % L) / G, c = nl % G;
    for (Index i = 0; i < p; ++i)
      for (Index j = 0; j < p; ++j)
        for (Index ch = 0; ch < C; ++ch)
          imgs[((n * C + ch) * W + r * p + i) * W + c * p + j] = x[nl * P + (i * p + j) * C + ch];
  }
}

// cols (N, L, C*p*p) from imgs, conv order (channel, i, j); with add = true, the transpose:
// imgs += col2im(cols). With ids (N, L), only the first K patches of each image's row of ids,
// in that order: cols (N, K, C*p*p), row (n, k) = patch ids[n * L + k] (the masking's ids_keep).
template <class S, bool Add = false>
inline void im2col(std::conditional_t<Add, const S*, S*> cols, std::conditional_t<Add, S*, const S*> imgs, Index N,
                   const PatchShape& s, const std::int64_t* ids = nullptr, Index K = 0) {
  const Index C = s.channels, p = s.patch, G = s.grid, W = G * p, L = G * G, P = p * p * C;
  const Index kept = ids ? K : L;
#pragma omp parallel for schedule(static)
  for (Index nk = 0; nk < N * kept; ++nk) {
    const Index n = nk / kept, l = ids ? static_cast<Index>(ids[n * L + nk % kept]) : nk % kept;
    const Index r = l / G, c = l % G;
    for (Index ch = 0; ch < C; ++ch)
      for (Index i = 0; i < p; ++i)
        for (Index j = 0; j < p; ++j) {
          const Index ci = nk * P + (ch * p + i) * p + j;
          const Index ii = ((n * C + ch) * W + r * p + i) * W + c * p + j;
          if constexpr (Add)
            imgs[ii] += cols[ci];
          else
            cols[ci] = imgs[ii];
        }
  }
}

template <class S>
struct PatchEmbedParams {
  S* weight = nullptr;  // (D, C, p, p) as the Conv2d; used as a (D, C*p*p) matrix
  S* bias = nullptr;    // (D)
};

// xavier on the (D, C*p*p) view of the weight; the bias keeps Conv2d's default
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (the official code never zeroes it)
template <class S>
inline void init_patch_embed(PatchEmbedParams<S>& w, const PatchShape& s, Index D, Rng& r) {
  const Index K = s.channels * s.patch * s.patch;
  xavier_uniform(w.weight, D, K, r);
  const double b = 1.0 / std::sqrt(static_cast<double>(K));
  for (Index i = 0; i < D; ++i) w.bias[i] = static_cast<S>(r.uniform(-b, b));
}

// out (N, L, D) = Conv2d(imgs); cols (N, L, C*p*p) is the cache for backward
template <class S>
inline void patch_embed_forward(S* out, S* cols, const S* imgs, const PatchEmbedParams<S>& w, Index N,
                                const PatchShape& s, Index D) {
  const Index L = s.grid * s.grid, K = s.channels * s.patch * s.patch;
  im2col<S, false>(cols, imgs, N, s);
  linear_forward(out, cols, w.weight, w.bias, N * L, K, D);
}

// dimgs (N, C, H, W) += (may be null), g +=
template <class S>
inline void patch_embed_backward(S* dimgs, PatchEmbedParams<S>& g, S* dcols, const S* dout, const S* cols,
                                 const PatchEmbedParams<S>& w, Index N, const PatchShape& s, Index D) {
  const Index L = s.grid * s.grid, K = s.channels * s.patch * s.patch;
  // forward: out = cols W^T + b   (dcols is scratch, (N, L, C*p*p), needed only for dimgs)
  linear_backward(dimgs ? dcols : static_cast<S*>(nullptr), g.weight, g.bias, dout, cols, w.weight, N * L, K, D,
                  LinearBackwardOptions{}.assigning());
  // forward: cols = im2col(imgs)   =>   dimgs += col2im(dcols)
  if (dimgs) im2col<S, true>(dcols, dimgs, N, s);
}

}  // namespace mae

#endif  // MAE_LAYERS_PATCH_HPP
