// mae/kernels/linear_products.hpp — the products of a linear layer (linear.hpp), threaded:
//
//   forward:   Y (rows, out) = X (rows, in) W^T + b (+ residual)
//   backward:  dX (rows, in) (+)= dY W,   dW (out, in) += dY^T X,   db (out) += sum over rows of dY
//
// with optional work fused on each finished block of Y (or dX) while it is in cache: the MLP
// runs GELU this way. The forward can also keep X packed for the backward's dW (KeptInput),
// so that a transformer block's activations that only the weight gradients read are stored
// once, in the products' format. The caller sees only these functions; how they split the
// work and pack the operands is below.
//
// Precision::bf16 runs the same products with bf16 operands and fp32 sums (formats.hpp):
// the recipe of PyTorch's CPU autocast for a linear layer; the outputs and gradients stay fp32.
//
// Thread policy: products with few rows (kFewRows: a batch of two ViT-Base encoder sequences
// is 100) are split between the threads by columns, each thread packing its own columns of
// the weight while it uses them: a shared packed weight would be written once and read whole
// by every thread, for a product too short to hide that traffic. Otherwise by chunks of rows
// (each thread keeps its rows from layer to layer, in its own cache) with the weight packed
// once, shared. Weight gradients are split by chunks of output channels, each summing over
// every row. Chunks depend on the problem size only, never on the thread count, and each
// element of a product takes its terms in one order (gemm.hpp): results are bitwise the same
// for any number of threads.
#ifndef MAE_KERNELS_LINEAR_PRODUCTS_HPP
#define MAE_KERNELS_LINEAR_PRODUCTS_HPP

#include "arch.hpp"
#include "../core/common.hpp"
#include "gemm.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

namespace mae::kernels {

// Work on one finished block of a product's output, rows [r0, r0 + nr) x columns [j0, j0 + nc),
// run by the thread that computed it. A non-owning reference to any callable (it allocates
// nothing); the default does nothing.
class BlockFn {
 public:
  BlockFn() = default;
  // f must outlive the call it is passed to (a lambda written in the call's arguments does)
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, BlockFn>>>
  BlockFn(F&& f)  // NOLINT: implicit, as a function parameter type
      : obj_(const_cast<void*>(static_cast<const void*>(&f))),
        call_([](void* o, Index r0, Index nr, Index j0, Index nc) {
          (*static_cast<std::remove_reference_t<F>*>(o))(r0, nr, j0, nc);
        }) {}
  void operator()(Index r0, Index nr, Index j0, Index nc) const {
    if (call_) call_(obj_, r0, nr, j0, nc);
  }

 private:
  void* obj_ = nullptr;
  void (*call_)(void*, Index, Index, Index, Index) = nullptr;
};

inline constexpr Index kFewRows = 256;

namespace linear_detail {

// Rows (or channels) per chunk: chunk_size's even split, rounded up to whole register tiles,
// so that only a product's last tile is partial.
inline Index tile_chunk(Index n, Index target) { return num_chunks(chunk_size(n, target), kTileRows) * kTileRows; }

// Buffers of the packed operands, filled by the calling thread's team and shared by it.
struct PackedWeight;
struct PackedInput;
template <class Tag, class F>
inline typename F::Word* packed_buffer(Index K, Index N) {
  return thread_buffer<Tag, typename F::Word>(gemm_packed_size<F>(K, N));
}

}  // namespace linear_detail

// A linear layer's input X (rows, in) kept by its forward for the backward's dW = dY^T X,
// already packed as that product's B operand (gemm's panels, in the products' format): the
// backward reads it instead of packing X again, and the forward packs it by the rows each
// thread has just used, while they are in cache. In bf16 it holds X's bf16 pairs: half the
// bytes of X. Grow-only (a steady-state step allocates nothing).
template <class S>
class KeptInput {
 public:
  // Room for X (rows, in) in format F, for the forward to fill
  template <class F>
  typename F::Word* reserve(Index rows, Index in) {
    rows_ = rows, in_ = in, bf16_ = !std::is_same_v<typename F::Word, S>;
    const auto n = static_cast<std::size_t>(gemm_packed_size<F>(rows, in));
    auto& buf = storage<F>(*this);
    if (buf.size() < n) buf.resize(n);
    return buf.data();
  }
  // The packed X for a backward of this shape in format F (an Error if the forward kept
  // another shape or precision, or nothing)
  template <class F>
  const typename F::Word* packed(Index rows, Index in) const {
    const bool bf16 = !std::is_same_v<typename F::Word, S>;
    if (rows != rows_ || in != in_ || bf16 != bf16_ || rows_ == 0)
      throw Error("linear backward: the input kept by the forward is (" + std::to_string(rows_) + ", " +
                  std::to_string(in_) + (bf16_ ? ") in bf16" : ")") + ", the backward is (" + std::to_string(rows) +
                  ", " + std::to_string(in) + (bf16 ? ") in bf16" : ")") + " (was the forward run?)");
    return storage<F>(*this).data();
  }

 private:
  template <class F, class Self>
  static auto& storage(Self& self) {
    if constexpr (std::is_same_v<typename F::Word, S>)
      return self.values_;
    else
      return self.words_;
  }
  AlignedVector<S> values_;             // fp32 (fp64) products: X's values in panels
  AlignedVector<std::uint32_t> words_;  // bf16 products: X's bf16 pairs in panels
  Index rows_ = 0, in_ = 0;
  bool bf16_ = false;
};

// Y (rows, out) = X (rows, in) W^T + bias (+ residual (rows, out)); bias and residual may be
// null. W is (out, in) row-major (PyTorch's Linear weight). With keep_x, X is also packed into
// it for the backward (KeptInput).
template <class S, Precision P = Precision::fp32>
inline void linear_products_forward(S* y, const S* x, const S* w, const S* bias, const S* residual, Index rows,
                                    Index in, Index out, BlockFn after_block = {}, KeptInput<S>* keep_x = nullptr) {
  using namespace linear_detail;
  using F = ProductFormat<S, P>;
  static_assert(std::is_same_v<typename F::Value, S>, "mae::kernels: bf16 products take float operands");
  const GemmOperand<S> X{x, in}, Wt{w, in, true};  // W^T (in, out)
  // Y = b (+ residual), then Y += X W^T, on rows [r0, r0 + nr) x columns [j0, j0 + nc)
  const auto block = [&](Index r0, Index nr, Index j0, Index nc, auto&& product) {
    StridedMap<S> Y(y + r0 * out + j0, nr, nc, Eigen::OuterStride<>(out));
    if (residual && bias)
      Y = ConstStridedMap<S>(residual + r0 * out + j0, nr, nc, Eigen::OuterStride<>(out)).rowwise() +
          ConstRowVecMap<S>(bias + j0, nc);
    else if (residual)
      Y = ConstStridedMap<S>(residual + r0 * out + j0, nr, nc, Eigen::OuterStride<>(out));
    else if (bias)
      Y.rowwise() = ConstRowVecMap<S>(bias + j0, nc);
    else
      Y.setZero();
    product();
    after_block(r0, nr, j0, nc);
  };
  typename F::Word* const kept = keep_x ? keep_x->template reserve<F>(rows, in) : nullptr;
  if (rows <= kFewRows) {  // by columns, each thread packing its part of W^T
#pragma omp parallel
    {
      const ThreadRange cols = thread_range(out, kGemmColumnStep<F>);
      if (cols.end > cols.begin)
        block(0, rows, cols.begin, cols.end - cols.begin,
              [&] { gemm_columns<F>(y, out, X, Wt, rows, out, in, cols.begin, cols.end); });
      if (kept) {  // X for the backward, in pieces the threads share
        const Index units = gemm_pack_units<F>(rows, in);
#pragma omp for schedule(static) nowait
        for (Index u = 0; u < units; ++u) gemm_pack_unit<F>(kept, X, rows, in, u);
      }
    }
    return;
  }
  auto* const packed = packed_buffer<PackedWeight, F>(in, out);  // W^T, for every chunk of rows
  const Index units = gemm_pack_units<F>(in, out);
  const Index rc = tile_chunk(rows, kRowChunk), chunks = num_chunks(rows, rc);
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (Index u = 0; u < units; ++u) gemm_pack_unit<F>(packed, Wt, in, out, u);
#pragma omp for schedule(static)
    for (Index c = 0; c < chunks; ++c) {
      const Index r0 = c * rc, nr = std::min(rc, rows - r0);
      if (kept) gemm_pack_rows<F>(kept, X, rows, in, r0, r0 + nr);  // this chunk's X for the backward
      block(r0, nr, 0, out, [&] {
        gemm<F>(y + r0 * out, out, GemmOperand<S>{x + r0 * in, in}, PackedB<F>{packed, in, out}, nr);
      });
    }
  }
}

// dX (rows, in) += dY W (assigned instead with assign_dx; dx may be null: no input gradient),
// then after_dx_block on each finished block of dX;  dW (out, in) += dY^T X;  db += sum of dY
// over rows (db may be null). X is x, or (x null) the input x_kept its forward kept.
template <class S, Precision P = Precision::fp32>
inline void linear_products_backward(S* dx, bool assign_dx, BlockFn after_dx_block, S* dw, S* db, const S* dy,
                                     const S* x, const S* w, Index rows, Index in, Index out,
                                     const KeptInput<S>* x_kept = nullptr) {
  using namespace linear_detail;
  using F = ProductFormat<S, P>;
  static_assert(std::is_same_v<typename F::Value, S>, "mae::kernels: bf16 products take float operands");
  // The two parts are independent: one parallel region, one barrier after the packing.
  const bool few_rows = rows <= kFewRows;
  const Index rc = tile_chunk(rows, kRowChunk), row_chunks = dx && !few_rows ? num_chunks(rows, rc) : 0;
  const Index oc = tile_chunk(out, kChannelChunk), channel_chunks = num_chunks(out, oc);
  // The B operands: W (out, in) of dX = dY W (packed once for all chunks of rows, or by each
  // thread for its columns with few rows), X (rows, in) of dW = dY^T X (packed once)
  const GemmOperand<S> W{w, in}, X{x, in};
  auto* const w_packed = row_chunks ? packed_buffer<PackedWeight, F>(out, in) : nullptr;
  if (!x == !x_kept) throw Error("linear backward: give the input either as values or as kept by the forward");
  typename F::Word* const x_buf = x ? packed_buffer<PackedInput, F>(rows, in) : nullptr;  // packed here
  const typename F::Word* const x_packed = x ? x_buf : x_kept->template packed<F>(rows, in);
  const Index w_units = row_chunks ? gemm_pack_units<F>(out, in) : 0, x_units = x ? gemm_pack_units<F>(rows, in) : 0;
  // dX (+)= dY W on rows [r0, r0 + nr) x columns [j0, j0 + nc)
  const auto dx_block = [&](Index r0, Index nr, Index j0, Index nc, auto&& product) {
    if (assign_dx) StridedMap<S>(dx + r0 * in + j0, nr, nc, Eigen::OuterStride<>(in)).setZero();
    product();
    after_dx_block(r0, nr, j0, nc);
  };
#pragma omp parallel
  {
    if (dx && few_rows) {  // this thread's columns of dX, its part of W packed as it goes
      const ThreadRange cols = thread_range(in, kGemmColumnStep<F>);
      if (cols.end > cols.begin)
        dx_block(0, rows, cols.begin, cols.end - cols.begin, [&] {
          gemm_columns<F>(dx, in, GemmOperand<S>{dy, out}, W, rows, in, out, cols.begin, cols.end);
        });
    }
#pragma omp for schedule(static)
    for (Index u = 0; u < w_units + x_units; ++u) {
      if (u < w_units)
        gemm_pack_unit<F>(w_packed, W, out, in, u);
      else
        gemm_pack_unit<F>(x_buf, X, rows, in, u - w_units);
    }
    // threads own row chunks of dX
#pragma omp for schedule(static) nowait
    for (Index c = 0; c < row_chunks; ++c) {
      const Index r0 = c * rc, nr = std::min(rc, rows - r0);
      dx_block(r0, nr, 0, in, [&] {
        gemm<F>(dx + r0 * in, in, GemmOperand<S>{dy + r0 * out, out}, PackedB<F>{w_packed, out, in}, nr);
      });
    }
    // threads own chunks of output channels of dW and db, each summing over every row
#pragma omp for schedule(static)
    for (Index c = 0; c < channel_chunks; ++c) {
      const Index o0 = c * oc, no = std::min(oc, out - o0);
      gemm<F>(dw + o0 * in, in, GemmOperand<S>{dy + o0, out, true}, PackedB<F>{x_packed, rows, in}, no);
      if (db)  // row by row: contiguous (vectorized) reads of each row's chunk of channels
        for (Index r = 0; r < rows; ++r) {
          const S* d = dy + r * out;
          for (Index o = o0; o < o0 + no; ++o) db[o] += d[o];
        }
    }
  }
}

}  // namespace mae::kernels

#endif  // MAE_KERNELS_LINEAR_PRODUCTS_HPP
