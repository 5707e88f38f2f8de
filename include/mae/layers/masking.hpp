// mae/layers/masking.hpp — per-sample random masking by argsort of noise (models_mae.py).
//
//   ids_shuffle = argsort(noise, axis 1)  (ascending: small noise = keep)
//   ids_restore = argsort(ids_shuffle)
//   ids_keep    = ids_shuffle[:, :K]       visible tokens in ascending-noise order
//   mask        = 1 everywhere, 0 for the kept; in spatial order (0 keep, 1 removed)
#ifndef MAE_LAYERS_MASKING_HPP
#define MAE_LAYERS_MASKING_HPP

#include "../core/common.hpp"
#include "../core/rng.hpp"

#include <cstdint>
#include <numeric>

namespace mae {

// K = int(L * (1 - mask_ratio)), truncated as Python's int() (L=196, .75 -> 49)
inline Index num_visible(Index L, double mask_ratio) {
  if (!(mask_ratio >= 0.0 && mask_ratio < 1.0))
    throw Error("mask ratio " + std::to_string(mask_ratio) + " is outside [0, 1)");
  const Index K = static_cast<Index>(static_cast<double>(L) * (1.0 - mask_ratio));
  if (K >= L)
    throw Error("mask ratio " + std::to_string(mask_ratio) + " masks no patch of " + std::to_string(L) +
                ": the loss (mean over removed patches) would be undefined");
  return K;
}

// The masking noise (L values in [0, 1)) of the image at position pos of an epoch, seeded by
// (seed, epoch, pos): the same image gets the same mask whichever process of a data-parallel
// run holds it (TrainOptions::noise_by_position, mae/distributed.hpp).
template <class S>
inline void masking_noise(S* out, Index L, std::uint64_t seed, Index epoch, Index pos) {
  Rng r(mix_seed(seed ^ 0x6d61736bull, static_cast<std::uint64_t>(epoch), static_cast<std::uint64_t>(pos)));
  for (Index i = 0; i < L; ++i) out[i] = static_cast<S>(r.uniform());
}

// ids_shuffle, ids_restore (N, L), mask (N, L) from noise (N, L)
template <class S>
inline void random_masking_ids(std::int64_t* ids_shuffle, std::int64_t* ids_restore, S* mask, const S* noise, Index N,
                               Index L, Index K) {
#pragma omp parallel for schedule(static)
  for (Index n = 0; n < N; ++n) {
    std::int64_t* sh = ids_shuffle + n * L;
    const S* nz = noise + n * L;
    std::iota(sh, sh + L, std::int64_t{0});
    // ascending noise, ties by index (a strict total order: the same result as a stable sort,
    // without its temporary buffer)
    std::sort(sh, sh + L, [nz](std::int64_t a, std::int64_t b) { return nz[a] < nz[b] || (nz[a] == nz[b] && a < b); });
    for (Index k = 0; k < L; ++k) ids_restore[n * L + sh[k]] = k;
    for (Index l = 0; l < L; ++l) mask[n * L + l] = ids_restore[n * L + l] < K ? S(0) : S(1);
  }
}

// Image n's kept tokens: out[n * out_T + k] = x[n, ids_shuffle[n, k]] for k < K, rows of D.
// (out_T >= K lets the caller leave room, e.g. for the cls token in front.)
template <class S>
inline void gather_tokens(S* out, Index out_T, const S* x, const std::int64_t* ids_shuffle, Index N, Index L, Index K,
                          Index D) {
#pragma omp parallel for schedule(static)
  for (Index nk = 0; nk < N * K; ++nk) {
    const Index n = nk / K, k = nk % K;
    const S* src = x + (n * L + ids_shuffle[n * L + k]) * D;
    std::copy(src, src + D, out + (n * out_T + k) * D);
  }
}

// dx (N, L, D) += the scatter of dout: the gradient of gather_tokens
template <class S>
inline void gather_tokens_backward(S* dx, const S* dout, Index out_T, const std::int64_t* ids_shuffle, Index N, Index L,
                                   Index K, Index D) {
#pragma omp parallel for schedule(static)
  for (Index nk = 0; nk < N * K; ++nk) {
    const Index n = nk / K, k = nk % K;
    S* dst = dx + (n * L + ids_shuffle[n * L + k]) * D;
    const S* src = dout + (n * out_T + k) * D;
    for (Index d = 0; d < D; ++d) dst[d] += src[d];
  }
}

}  // namespace mae

#endif  // MAE_LAYERS_MASKING_HPP
