// mae/inference/attention_maps.hpp — where a ViT looks: the cls token's attention to the patches
// per head (the DINO figure), and the attention rollout of Abnar & Zuidema ("Quantifying
// Attention Flow in Transformers", 2020), from the attention probabilities a forward keeps
// (VisionTransformer::attention(b), (N*H*T, T), softmax over keys).
//
//   model.forward(images(x, N, C, S, S), nullptr, false);
//   const auto heads = cls_attention(model, Cfg::depth, n);  // (H, L): image n, last block
//   const auto flow = attention_rollout(model, n);           // (L)
#ifndef MAE_INFERENCE_ATTENTION_MAPS_HPP
#define MAE_INFERENCE_ATTENTION_MAPS_HPP

#include "../core/common.hpp"

#include <Eigen/Dense>

#include <vector>

namespace mae {

// Block b's (1..depth) attention of the cls token to each patch, for image n of the last
// forward: (H, L), row h = attention(b)[n, h, 0, 1:]. Each row sums to 1 minus the cls token's
// attention to itself.
template <class Vit>
std::vector<double> cls_attention(const Vit& model, Index b, Index n) {
  constexpr Index H = Vit::Config::num_heads, T = Vit::T, L = Vit::L;
  if (n < 0 || n >= model.batch_size()) throw Error("cls_attention: no image " + std::to_string(n) + " in the batch");
  const auto a = model.attention(b);  // (N*H*T, T)
  std::vector<double> out(static_cast<std::size_t>(H * L));
  for (Index h = 0; h < H; ++h)
    for (Index l = 0; l < L; ++l) out[static_cast<std::size_t>(h * L + l)] = a((n * H + h) * T, 1 + l);
  return out;
}

// The attention rollout of image n of the last forward: (L), the cls token's row of
//   R = A_depth ... A_2 A_1,   A_b = rownormalize(0.5 mean_h(attention_b) + 0.5 I)
// (the residual connection counted as half of each block's mixing), without the cls column.
template <class Vit>
std::vector<double> attention_rollout(const Vit& model, Index n) {
  constexpr Index H = Vit::Config::num_heads, T = Vit::T, L = Vit::L, depth = Vit::kDepth;
  if (n < 0 || n >= model.batch_size())
    throw Error("attention_rollout: no image " + std::to_string(n) + " in the batch");
  Eigen::MatrixXd R = Eigen::MatrixXd::Identity(T, T);
  for (Index b = 1; b <= depth; ++b) {
    const auto a = model.attention(b);  // (N*H*T, T)
    Eigen::MatrixXd A = Eigen::MatrixXd::Zero(T, T);
    for (Index h = 0; h < H; ++h) A += a.block((n * H + h) * T, 0, T, T).template cast<double>();
    A = 0.5 * A / static_cast<double>(H) + 0.5 * Eigen::MatrixXd::Identity(T, T);
    A = A.array().colwise() / A.rowwise().sum().array();
    R = A * R;
  }
  std::vector<double> out(static_cast<std::size_t>(L));
  for (Index l = 0; l < L; ++l) out[static_cast<std::size_t>(l)] = R(0, 1 + l);
  return out;
}

}  // namespace mae

#endif  // MAE_INFERENCE_ATTENTION_MAPS_HPP
