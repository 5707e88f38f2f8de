// mae/layers/linear.hpp — the fully connected layer, y = x W^T + b (PyTorch nn.Linear).
//
// The products run in kernels/linear_products.hpp; this header says what is computed. A
// caller may fuse a residual add into the forward, and work on each finished block of the
// output (forward) or of dx (backward) while it is in cache: the MLP applies GELU this way.
#ifndef MAE_LAYERS_LINEAR_HPP
#define MAE_LAYERS_LINEAR_HPP

#include "../core/common.hpp"
#include "../core/rng.hpp"
#include "../kernels/linear_products.hpp"

#include <cmath>
#include <type_traits>

namespace mae {

template <class S>
struct LinearParams {
  S* weight = nullptr;  // (out, in), PyTorch layout
  S* bias = nullptr;    // (out)
};

// xavier_uniform_ on an (out, in) weight: U(-a, a), a = sqrt(6 / (in + out)).
template <class S>
inline void xavier_uniform(S* w, Index fan_out, Index fan_in, Rng& r) {
  const double a = std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
  for (Index i = 0; i < fan_out * fan_in; ++i) w[i] = static_cast<S>(r.uniform(-a, a));
}

// The reference's Linear initialization (_init_weights): xavier weight, zero bias.
template <class S>
inline void init_linear(LinearParams<S>& l, Index out_dim, Index in_dim, Rng& r) {
  xavier_uniform(l.weight, out_dim, in_dim, r);
  zero(l.bias, out_dim);
}

// The products' arithmetic: Precision::fp32 (the default), or Precision::bf16, bf16 operands
// (rounded to nearest even) with fp32 sums, the recipe of PyTorch's CPU autocast for
// nn.Linear; inputs, outputs and gradients are fp32 either way (kernels/format_bf16.hpp).
using kernels::Precision;

// f(r0, nr, j0, nc) on the block rows [r0, r0 + nr) x columns [j0, j0 + nc) of a finished output.
using kernels::BlockFn;

// A layer's input kept by its forward, packed, for the weight gradient of its backward
// (LinearForwardOptions::keeping): what a block stores of the activations only dW reads.
using kernels::KeptInput;

// Precision::bf16 is for float layers only: a double layer (the gradient checks) is always
// computed in double.
inline void check_precision_for_scalar(Precision p, bool is_float) {
  if (p == Precision::bf16 && !is_float) throw Error("bf16 products need a float model (this one is double)");
}

// The one runtime-to-compile-time switch of the layers: f(std::true_type{}) for bf16 products,
// f(std::false_type{}) for the scalar's own (and the error above for a double layer asked for bf16).
template <class S, class F>
inline void dispatch_precision(Precision p, F&& f) {
  check_precision_for_scalar(p, std::is_same_v<S, float>);
  if constexpr (std::is_same_v<S, float>) {
    if (p == Precision::bf16) return f(std::true_type{});
  }
  f(std::false_type{});
}

// How one linear call runs: in the precision its model chose once (a BlockShape's, a model's
// Options'), and where wanted with a residual added into the output or work on each finished
// block of it:  LinearForwardOptions<S>::in(P),  ::in(P).plus(x_in),  ::in(P).then(gelu).
template <class S>
struct LinearForwardOptions {
  Precision precision = Precision::fp32;  // the products' arithmetic
  const S* residual = nullptr;            // (rows, out): out = x W^T + b + residual
  BlockFn after_block;                    // on each finished block of out
  KeptInput<S>* keep_input = nullptr;     // inp, packed for the backward's weight gradient

  static LinearForwardOptions in(Precision p) {
    LinearForwardOptions o;
    o.precision = p;
    return o;
  }
  LinearForwardOptions plus(const S* residual_rows) const {
    LinearForwardOptions o = *this;
    o.residual = residual_rows;
    return o;
  }
  LinearForwardOptions then(BlockFn f) const {
    LinearForwardOptions o = *this;
    o.after_block = f;
    return o;
  }
  // The input kept (packed) in k for linear_backward, which then needs no copy of inp
  LinearForwardOptions keeping(KeptInput<S>& k) const {
    LinearForwardOptions o = *this;
    o.keep_input = &k;
    return o;
  }
};

// out (rows, out_dim) = inp (rows, in_dim) W^T + b  (+ residual)
template <class S>
inline void linear_forward(S* out, const S* inp, const S* weight, const S* bias, Index rows, Index in_dim,
                           Index out_dim, LinearForwardOptions<S> opt = {}) {
  dispatch_precision<S>(opt.precision, [&](auto bf16) {
    constexpr Precision P = decltype(bf16)::value ? Precision::bf16 : Precision::fp32;
    kernels::linear_products_forward<S, P>(out, inp, weight, bias, opt.residual, rows, in_dim, out_dim, opt.after_block,
                                           opt.keep_input);
  });
}

// The same for the backward:  LinearBackwardOptions::in(P),  .assigning() when dinp is scratch
// (assigned rather than added to),  .then(f) on each finished block of dinp.
struct LinearBackwardOptions {
  Precision precision = Precision::fp32;  // the products' arithmetic (as the forward's)
  Grad dinp = Grad::accumulate;           // Grad::assign: dinp is scratch, assigned rather than added to
  BlockFn after_dinp_block;               // on each finished block of dinp

  static LinearBackwardOptions in(Precision p) {
    LinearBackwardOptions o;
    o.precision = p;
    return o;
  }
  LinearBackwardOptions assigning() const {
    LinearBackwardOptions o = *this;
    o.dinp = Grad::assign;
    return o;
  }
  LinearBackwardOptions then(BlockFn f) const {
    LinearBackwardOptions o = *this;
    o.after_dinp_block = f;
    return o;
  }
};

namespace linear_layer_detail {
// The backward's dispatch, with the input as values (inp) or as its forward kept it (kept)
template <class S>
inline void backward(S* dinp, S* dweight, S* dbias, const S* dout, const S* inp, const KeptInput<S>* kept,
                     const S* weight, Index rows, Index in_dim, Index out_dim, const LinearBackwardOptions& opt) {
  const bool assign = opt.dinp == Grad::assign;
  dispatch_precision<S>(opt.precision, [&](auto bf16) {
    constexpr Precision P = decltype(bf16)::value ? Precision::bf16 : Precision::fp32;
    kernels::linear_products_backward<S, P>(dinp, assign, opt.after_dinp_block, dweight, dbias, dout, inp, weight, rows,
                                            in_dim, out_dim, kept);
  });
}
}  // namespace linear_layer_detail

// The gradients of linear_forward (dinp may be null: no gradient wanted for the input):
//   forward: out = inp W^T + b   =>   dinp += dout W,   dW += dout^T inp,   db += sum over rows of dout
template <class S>
inline void linear_backward(S* dinp, S* dweight, S* dbias, const S* dout, const S* inp, const S* weight, Index rows,
                            Index in_dim, Index out_dim, LinearBackwardOptions opt = {}) {
  linear_layer_detail::backward<S>(dinp, dweight, dbias, dout, inp, nullptr, weight, rows, in_dim, out_dim, opt);
}
// The same with the input as its forward kept it (LinearForwardOptions::keeping).
template <class S>
inline void linear_backward(S* dinp, S* dweight, S* dbias, const S* dout, const KeptInput<S>& inp, const S* weight,
                            Index rows, Index in_dim, Index out_dim, LinearBackwardOptions opt = {}) {
  linear_layer_detail::backward<S>(dinp, dweight, dbias, dout, nullptr, &inp, weight, rows, in_dim, out_dim, opt);
}

}  // namespace mae

#endif  // MAE_LAYERS_LINEAR_HPP
