// mae/kernels/gemm.hpp — C (M, N) += alpha A (M, K) B (K, N) for row-major C, with A and B each
// a row-major matrix or the transpose of one: the products of the linear layers, in every
// operand format (formats.hpp: fp32, bf16 portable, bf16 on vdpbf16ps, bf16 on AMX).
//
// One blocked loop nest in the classic layout (Goto / BLIS), written for row-major C:
//   A prepared once (the format's prepare_a: as it is, or rounded to bf16 pairs);
//   for each block of NC columns, each block of KC steps of k (K split evenly, block_k):
//     pack B's (KC, NC) block into panels of NR columns;
//     for each block of MC rows:
//       for each slab of MR rows of A (packed, or read in place; kept in L1), for each B panel
//       (from L2): the format's register tile C (MR, NR) += A slab B panel.
// Panels at the right and bottom edges are zero padded; their tile runs on a copy of C's valid
// part in a small buffer, copied back.
//
// A B used by many calls (the weights, for every chunk of rows) can be packed once into the
// same panels beforehand, its pieces shared between the threads (PackedB below).
//
// Each element of C gets its k terms in the same order whatever M, N, the caller's chunk of C
// or the thread: results depend on the problem only. Single-threaded: call it inside a
// parallel loop, one chunk of C per call. The packing buffers belong to the calling thread
// and are allocated once, or grow to the largest product (a steady-state training step
// allocates nothing). tests/test_kernels.cpp compares every format with reference.hpp at every
// edge and orientation; docs/performance.md has the measurements behind the blocking.
#ifndef MAE_KERNELS_GEMM_HPP
#define MAE_KERNELS_GEMM_HPP

#include "arch.hpp"
#include "../core/common.hpp"
#include "formats.hpp"
#include "product_clock.hpp"

#include <algorithm>
#include <string>
#include <type_traits>

namespace mae::kernels {

// B (K, N) packed beforehand in format F (gemm_pack_unit).
template <class F>
struct PackedB {
  const typename F::Word* data;
  Index K, N;
};

namespace gemm_detail {

// Columns of B once packed: whole panels, the last one rounded up to whole packets.
template <class F>
inline Index packed_width(Index N) {
  return N / F::NR * F::NR + num_chunks(N % F::NR, F::P) * F::P;
}
// Where B packed beforehand holds the panels of k block [p0, p0 + kc) from column j0 (a
// multiple of NR): every block of k holds the panels of all N columns, in order.
template <class F>
inline Index packed_offset(Index N, Index p0, Index kc, Index j0) {
  return F::rows(p0) * packed_width<F>(N) + j0 * F::rows(kc);
}

// The tile at C's nr x ncols corner (nr <= MR, ncols <= W packets): on C itself when whole,
// else on a copy of C's valid part in a full-size buffer (the same arithmetic), copied back.
template <class F, int W>
inline void tile_at(typename F::Value* c, Index ldc, typename F::ATile a, const typename F::Word* bp, Index kc,
                    typename F::Value alpha, Index nr, Index ncols) {
  using S = typename F::Value;
  constexpr Index n = W * F::P;
  if (nr == F::MR && ncols == n) return F::template tile<W>(c, ldc, a, bp, kc, alpha);
  alignas(64) S t[F::MR * n] = {};
  for (Index r = 0; r < nr; ++r) std::copy_n(c + r * ldc, ncols, t + r * n);
  F::template tile<W>(t, n, a, bp, kc, alpha);
  for (Index r = 0; r < nr; ++r) std::copy_n(t + r * n, ncols, c + r * ldc);
}

template <class F, class = void>
struct HasBegin : std::false_type {};
template <class F>
struct HasBegin<F, std::void_t<decltype(F::begin())>> : std::true_type {};
template <class F, class = void>
struct HasFaster : std::false_type {};
template <class F>
struct HasFaster<F, std::void_t<typename F::Faster>> : std::true_type {};

struct ASlab;   // thread_buffer tags: the slab of A,
struct BBlock;  // and the block of B

// B either packed here, block by block, or (packed != null) all packed before. Only C's
// columns [jb, je) (jb a multiple of NR); N is B's whole width.
template <class F>
inline void run(typename F::Value* c, Index ldc, GemmOperand<typename F::Value> A, GemmOperand<typename F::Value> B,
                const typename F::Word* packed, Index M, Index N, Index K, typename F::Value alpha, Index jb,
                Index je) {
  if constexpr (!F::kScales)
    if (alpha != 1) throw Error("gemm: this operand format adds A B to C (alpha must be 1)");
  if constexpr (HasFaster<F>::value)
    if (F::faster_available()) return run<typename F::Faster>(c, ldc, A, B, packed, M, N, K, alpha, jb, je);
  MAE_PRODUCT_SCOPE;
  using Word = typename F::Word;
  constexpr Index P = F::P, MR = F::MR, NR = F::NR, MC = F::MC, NC = F::NC;
  constexpr int NV = F::NV;
  Word* const slab = thread_buffer<ASlab, Word>(F::slab_size());
  Word* const bb = thread_buffer<BBlock, Word>(NC * F::rows(F::KC));
  const Index KC = F::block_k(K);
  const typename F::A a = F::prepare_a(A, M, K);
  if constexpr (HasBegin<F>::value) F::begin();
  for (Index j0 = jb; j0 < je; j0 += NC) {
    const Index nc = std::min(NC, je - j0);
    for (Index p0 = 0; p0 < K; p0 += KC) {
      const Index kc = std::min(KC, K - p0), rows = F::rows(kc);
      const Word* bp = bb;
      if (packed)
        bp = packed + packed_offset<F>(N, p0, kc, j0);
      else
        F::pack_b(bb, B, p0, kc, j0, nc);
      for (Index i0 = 0; i0 < M; i0 += MC) {
        const Index mc = std::min(MC, M - i0);
        for (Index r0 = 0; r0 < mc; r0 += MR) {
          const Index i = i0 + r0, nr = std::min(MR, mc - r0);
          const typename F::ATile at = F::a_tile(slab, a, i, nr, p0, kc);
          for (Index c0 = 0; c0 < nc; c0 += NR) {
            const Index ncols = std::min(NR, nc - c0), nv = num_chunks(ncols, P);
            const Word* bq = bp + c0 * rows;  // the panels before this one are all NR wide
            auto* cq = c + i * ldc + j0 + c0;
            static_assert(NV == 2 || NV == 3, "one case per panel width in packets");
            if (nv == NV)
              tile_at<F, NV>(cq, ldc, at, bq, kc, alpha, nr, ncols);
            else if (nv == 2)  // the last panel may be narrower
              tile_at<F, 2>(cq, ldc, at, bq, kc, alpha, nr, ncols);
            else
              tile_at<F, 1>(cq, ldc, at, bq, kc, alpha, nr, ncols);
          }
        }
      }
    }
  }
  if constexpr (HasBegin<F>::value) F::end();
}

inline void check_columns(Index j_begin, Index j_end, Index N, Index step) {
  const auto on_panel_edge = [&](Index j) { return j % step == 0 || j == N; };
  if (!on_panel_edge(j_begin) || !on_panel_edge(j_end) || j_begin > j_end || j_end > N)
    throw Error("gemm_columns: columns [" + std::to_string(j_begin) + ", " + std::to_string(j_end) +
                ") do not start and end on panels of " + std::to_string(step) +
                " columns (or at N = " + std::to_string(N) + ")");
}

}  // namespace gemm_detail

// C (M, N; row stride ldc) += alpha A B, A (M, K), B (K, N), in format F (formats.hpp). The
// bf16 formats take alpha = 1 only (the products of autocast; F::kScales is false).
template <class F>
inline void gemm(typename F::Value* c, Index ldc, GemmOperand<typename F::Value> A, GemmOperand<typename F::Value> B,
                 Index M, Index N, Index K, typename F::Value alpha = 1) {
  if (M == 0 || N == 0 || K == 0) return;
  gemm_detail::run<F>(c, ldc, A, B, nullptr, M, N, K, alpha, 0, N);
}

// B (K, N) packed once for every product with it: a layer's weights, or the input its weight
// gradient is summed over, shared by the threads that compute the chunks of C. The same panels
// gemm packs on each call (so the same results, bit for bit), in one buffer of
// gemm_packed_size<F>(K, N) words (aligned for Eigen's packets, as thread_buffer's are),
// packed in gemm_pack_units<F>(K, N) independent pieces that the threads of a parallel loop
// share:
//   for (u = 0; u < gemm_pack_units<F>(K, N); ++u) gemm_pack_unit<F>(buf, B, K, N, u);
//   gemm<F>(c, ldc, A, PackedB<F>{buf, K, N}, M);
template <class F>
inline Index gemm_packed_size(Index K, Index N) {
  return F::rows(K) * gemm_detail::packed_width<F>(N);
}
template <class F>
inline Index gemm_pack_units(Index K, Index N) {
  return num_chunks(K, F::block_k(K)) * num_chunks(N, F::NR);
}
// Piece u: one panel of one block of k.
template <class F>
inline void gemm_pack_unit(typename F::Word* out, GemmOperand<typename F::Value> B, Index K, Index N, Index u) {
  const Index kb = F::block_k(K), panels = num_chunks(N, F::NR), p0 = u / panels * kb, j0 = u % panels * F::NR;
  const Index kc = std::min(kb, K - p0);
  F::pack_b(out + gemm_detail::packed_offset<F>(N, p0, kc, j0), B, p0, kc, j0, std::min(F::NR, N - j0));
}

// Rows [k_begin, k_end) of B (K, N), packed into the same buffer and words as gemm_pack_unit
// packs them: the part of B a thread packs while it has those rows in cache (a linear layer's
// forward packs its input, the B of the weight gradient, by its chunks of rows). k_begin and
// k_end are even (a bf16 pair never straddles two calls), or k_end is K.
template <class F>
inline void gemm_pack_rows(typename F::Word* out, GemmOperand<typename F::Value> B, Index K, Index N, Index k_begin,
                           Index k_end) {
  if (k_begin % 2 || (k_end % 2 && k_end != K) || k_begin > k_end || k_end > K)
    throw Error("gemm_pack_rows: rows [" + std::to_string(k_begin) + ", " + std::to_string(k_end) + ") of " +
                std::to_string(K) + " do not start and end on pairs of rows");
  const Index kb = F::block_k(K);
  for (Index p0 = k_begin / kb * kb; p0 < k_end; p0 += kb) {
    const Index kc = std::min(kb, K - p0), s0 = std::max(p0, k_begin), s1 = std::min(p0 + kc, k_end);
    for (Index j0 = 0; j0 < N; j0 += F::NR) {  // panel by panel: row r of a panel at r times its width
      const Index ncols = std::min(F::NR, N - j0), width = num_chunks(ncols, F::P) * F::P;
      F::pack_b(out + gemm_detail::packed_offset<F>(N, p0, kc, j0) + F::rows(s0 - p0) * width, B, s0, s1 - s0, j0,
                ncols);
    }
  }
}

// C (M, N; row stride ldc) += alpha A B, B packed as above.
template <class F>
inline void gemm(typename F::Value* c, Index ldc, GemmOperand<typename F::Value> A, const PackedB<F>& B, Index M,
                 typename F::Value alpha = 1) {
  if (M == 0 || B.N == 0 || B.K == 0) return;
  gemm_detail::run<F>(c, ldc, A, {nullptr, 0}, B.data, M, B.N, B.K, alpha, 0, B.N);
}

// gemm_columns: only C's columns [j_begin, j_end), the same values as the whole product there
// (so threads can share the columns of one C). j_begin and j_end are multiples of
// kGemmColumnStep<F> (the width of B's panels) or B's width N.
template <class F>
inline constexpr Index kGemmColumnStep = F::NR;

// B packed beforehand (PackedB).
template <class F>
inline void gemm_columns(typename F::Value* c, Index ldc, GemmOperand<typename F::Value> A, const PackedB<F>& B,
                         Index M, Index j_begin, Index j_end, typename F::Value alpha = 1) {
  gemm_detail::check_columns(j_begin, j_end, B.N, F::NR);
  if (M == 0 || j_end == j_begin || B.K == 0) return;
  gemm_detail::run<F>(c, ldc, A, {nullptr, 0}, B.data, M, B.N, B.K, alpha, j_begin, j_end);
}
// B (K, N) packed here, only these columns' panels: when a thread owns a range of columns of a
// product with few rows, it packs its own part of B once, while it is used, instead of all
// threads sharing (and each reading all of) a B packed beforehand.
template <class F>
inline void gemm_columns(typename F::Value* c, Index ldc, GemmOperand<typename F::Value> A,
                         GemmOperand<typename F::Value> B, Index M, Index N, Index K, Index j_begin, Index j_end,
                         typename F::Value alpha = 1) {
  gemm_detail::check_columns(j_begin, j_end, N, F::NR);
  if (M == 0 || j_end == j_begin || K == 0) return;
  gemm_detail::run<F>(c, ldc, A, B, nullptr, M, N, K, alpha, j_begin, j_end);
}

}  // namespace mae::kernels

#endif  // MAE_KERNELS_GEMM_HPP
