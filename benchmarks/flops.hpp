// Analytic FLOP counts (1 multiply-add = 2 FLOPs) of the MAE training step, used by the
// benchmarks' GFLOP/s counters. Only matrix products are counted (LayerNorm, GELU, softmax and
// the optimizer are a few percent and are left out, as is usual for MFU figures).
//
// forward, per image, K visible patches, T = 1 + K encoder tokens, T' = 1 + L decoder tokens:
//   patch_embed   2 K (C p^2) D                 (the kept patches: the reference embeds all L and
//                                                drops 3/4 of them; that work is not counted)
//   block(T, d)   2 T (3d^2 + d^2 + 2 r d^2) + 4 T^2 d    (qkv, proj, fc1 + fc2; q k^T and a v)
//   decoder_embed 2 T D D'
//   decoder_pred  2 T' D' (p^2 C)
// backward = 2 x forward (a gradient for the input and one for the weight of every product),
// so a training step is 3 x forward.
#pragma once

#include <mae/models/config.hpp>

#include <cstdint>

namespace mae_bench {

inline double block_flops(double T, double d, double r) { return 2 * T * (4 * d * d + 2 * r * d * d) + 4 * T * T * d; }

template <class Cfg>
double forward_flops_per_image(double mask_ratio = 0.75) {
  const double L = Cfg::num_patches, K = static_cast<double>(static_cast<long>(L * (1.0 - mask_ratio)));
  const double T = 1 + K, Td = 1 + L, D = Cfg::embed_dim, Dd = Cfg::decoder_embed_dim, r = Cfg::mlp_ratio;
  const double pp = Cfg::patch_size * Cfg::patch_size * Cfg::in_chans;
  return 2 * K * pp * D + Cfg::depth * block_flops(T, D, r) + 2 * T * D * Dd +
         Cfg::decoder_depth * block_flops(Td, Dd, r) + 2 * Td * Dd * pp;
}

template <class Cfg>
double train_flops_per_image(double mask_ratio = 0.75) {
  return 3 * forward_flops_per_image<Cfg>(mask_ratio);
}

}  // namespace mae_bench
