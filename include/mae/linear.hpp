// mae/linear.hpp — the fully connected layer, y = x W^T + b (PyTorch nn.Linear).
//
// Contract (every layer in this library): forward assigns its outputs and its cache;
// backward ACCUMULATES (+=) into the gradients of its inputs and parameters and never
// modifies the forward cache, so it can run twice. Whoever owns a gradient zeroes it.
// Where a layer's input gradient is often a fresh scratch buffer, its backward also takes
// Grad::overwrite (assign instead of add), which saves zeroing that buffer first.
#ifndef MAE_LINEAR_HPP
#define MAE_LINEAR_HPP

#include "common.hpp"
#include "gemm.hpp"
#include "rng.hpp"

#include <cmath>

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

// Work a caller may attach to each finished block of the output (rows [r0, r0 + nr), columns
// [j0, j0 + nc)), run by the thread that computed it while the block is still in its cache:
// the block fuses GELU this way.
struct NoChunkWork {
  void operator()(Index, Index, Index, Index) const {}
};

// Products with few rows (a batch of two ViT-Base encoder sequences: 100) are split between
// the threads by columns, each thread packing its own columns of the weight while it uses
// them: a shared packed weight would be written once and read whole by every thread, for a
// product too short to hide that traffic. Otherwise by chunks of rows (each thread keeps its
// rows from layer to layer, in its own cache) with the weight packed once, shared.
inline constexpr Index kFewRows = 256;

// Rows (or channels) per chunk: chunk_size's even split, rounded up to whole register tiles.
inline Index tile_chunk(Index n, Index target) {
  return num_chunks(chunk_size(n, target), kGemmTileRows) * kGemmTileRows;
}

// out (rows, out_dim) = inp (rows, in_dim) * weight^T + bias   (+ residual (rows, out_dim), if given)
template <class S, class ChunkWork = NoChunkWork>
inline void linear_forward(S* out, const S* inp, const S* weight, const S* bias, Index rows, Index in_dim,
                           Index out_dim, const nondeduced<S>* residual = nullptr, ChunkWork after_block = {}) {
  const GemmOperand<S> X{inp, in_dim}, Wt{weight, in_dim, true};  // W^T (in, out)
  // Y = b (+ residual), then Y += X W^T, on rows [r0, r0 + nr) x columns [j0, j0 + nc)
  const auto block = [&](Index r0, Index nr, Index j0, Index nc, auto&& product) {
    StridedMap<S> Y(out + r0 * out_dim + j0, nr, nc, Eigen::OuterStride<>(out_dim));
    if (residual && bias)
      Y = ConstStridedMap<S>(residual + r0 * out_dim + j0, nr, nc, Eigen::OuterStride<>(out_dim)).rowwise() +
          ConstRowVecMap<S>(bias + j0, nc);
    else if (residual)
      Y = ConstStridedMap<S>(residual + r0 * out_dim + j0, nr, nc, Eigen::OuterStride<>(out_dim));
    else if (bias)
      Y.rowwise() = ConstRowVecMap<S>(bias + j0, nc);
    else
      Y.setZero();
    product();
    after_block(r0, nr, j0, nc);
  };
  if (rows <= kFewRows) {
#pragma omp parallel
    {
      const ThreadRange cols = thread_range(out_dim, kGemmColumnStep<S>);
      if (cols.end > cols.begin)
        block(0, rows, cols.begin, cols.end - cols.begin,
              [&] { gemm_columns(out, out_dim, X, Wt, rows, out_dim, in_dim, cols.begin, cols.end); });
    }
    return;
  }
  S* const packed = gemm_shared_buffer<S>(0, gemm_packed_size<S>(in_dim, out_dim));  // W^T, for every chunk
  const Index units = gemm_pack_units<S>(in_dim, out_dim);
  const Index rc = tile_chunk(rows, kRowChunk), chunks = num_chunks(rows, rc);
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (Index u = 0; u < units; ++u) gemm_pack_unit(packed, Wt, in_dim, out_dim, u);
#pragma omp for schedule(static)
    for (Index c = 0; c < chunks; ++c) {
      const Index r0 = c * rc, nr = std::min(rc, rows - r0);
      block(r0, nr, 0, out_dim, [&] {
        gemm(out + r0 * out_dim, out_dim, GemmOperand<S>{inp + r0 * in_dim, in_dim}, PackedB<S>{packed, in_dim, out_dim}, nr);
      });
    }
  }
}

// Gradients of linear_forward. dinp may be null (no gradient wanted for the input).
// after_dinp_block(r0, nr, j0, nc) runs on each finished block of dinp (see NoChunkWork).
// dparam_mode: Grad::overwrite assigns dweight and dbias (the model's first backward after
// zero_grad), saving a pass that zeroes every gradient in memory first.
template <class S, class ChunkWork = NoChunkWork>
inline void linear_backward(S* dinp, S* dweight, S* dbias, const S* dout, const S* inp, const S* weight,
                            Index rows, Index in_dim, Index out_dim, Grad dinp_mode = Grad::accumulate,
                            ChunkWork after_dinp_block = {}, Grad dparam_mode = Grad::accumulate) {
  // The two parts are independent: one parallel region, one barrier after the packing.
  const bool few_rows = rows <= kFewRows;
  const Index rc = tile_chunk(rows, kRowChunk), row_chunks = dinp && !few_rows ? num_chunks(rows, rc) : 0;
  const Index oc = tile_chunk(out_dim, kChannelChunk), channel_chunks = num_chunks(out_dim, oc);
  // The B operands: W (out, in) of dX = dY W (packed once for all chunks of rows, or by each
  // thread for its columns with few rows), X (rows, in) of dW = dY^T X (packed once)
  const GemmOperand<S> W{weight, in_dim}, X{inp, in_dim};
  S* const w_packed = row_chunks ? gemm_shared_buffer<S>(0, gemm_packed_size<S>(out_dim, in_dim)) : nullptr;
  S* const x_packed = gemm_shared_buffer<S>(1, gemm_packed_size<S>(rows, in_dim));
  const Index w_units = row_chunks ? gemm_pack_units<S>(out_dim, in_dim) : 0, x_units = gemm_pack_units<S>(rows, in_dim);
  // forward: Y = X W^T   =>   dX += dY W on rows [r0, r0 + nr) x columns [j0, j0 + nc)
  // (= with Grad::overwrite)
  const auto dx_block = [&](Index r0, Index nr, Index j0, Index nc, auto&& product) {
    if (dinp_mode == Grad::overwrite) StridedMap<S>(dinp + r0 * in_dim + j0, nr, nc, Eigen::OuterStride<>(in_dim)).setZero();
    product();
    after_dinp_block(r0, nr, j0, nc);
  };
#pragma omp parallel
  {
    if (dinp && few_rows) {  // this thread's columns of dX, its part of W packed as it goes
      const ThreadRange cols = thread_range(in_dim, kGemmColumnStep<S>);
      if (cols.end > cols.begin)
        dx_block(0, rows, cols.begin, cols.end - cols.begin, [&] {
          gemm_columns(dinp, in_dim, GemmOperand<S>{dout, out_dim}, W, rows, in_dim, out_dim, cols.begin, cols.end);
        });
    }
#pragma omp for schedule(static)
    for (Index u = 0; u < w_units + x_units; ++u) {
      if (u < w_units)
        gemm_pack_unit(w_packed, W, out_dim, in_dim, u);
      else
        gemm_pack_unit(x_packed, X, rows, in_dim, u - w_units);
    }
    // threads own row chunks of dX
#pragma omp for schedule(static) nowait
    for (Index c = 0; c < row_chunks; ++c) {
      const Index r0 = c * rc, nr = std::min(rc, rows - r0);
      dx_block(r0, nr, 0, in_dim, [&] {
        gemm(dinp + r0 * in_dim, in_dim, GemmOperand<S>{dout + r0 * out_dim, out_dim}, PackedB<S>{w_packed, out_dim, in_dim}, nr);
      });
    }
    // forward: Y = X W^T + b   =>   dW += dY^T X,  db += sum over rows of dY
    // (threads own chunks of output channels, each summing over every row)
#pragma omp for schedule(static)
    for (Index c = 0; c < channel_chunks; ++c) {
      const Index o0 = c * oc, no = std::min(oc, out_dim - o0);
      if (dparam_mode == Grad::overwrite) {  // zeroed here, while this chunk is in cache
        zero(dweight + o0 * in_dim, no * in_dim);
        if (dbias) std::fill(dbias + o0, dbias + o0 + no, S(0));
      }
      gemm(dweight + o0 * in_dim, in_dim, GemmOperand<S>{dout + o0, out_dim, true}, PackedB<S>{x_packed, rows, in_dim},
           no);
      if (dbias)  // row by row: contiguous (vectorized) reads of each row's chunk of channels
        for (Index r = 0; r < rows; ++r) {
          const S* d = dout + r * out_dim;
          for (Index o = o0; o < o0 + no; ++o) dbias[o] += d[o];
        }
    }
  }
}

}  // namespace mae

#endif  // MAE_LINEAR_HPP
