// mae/kernels/gemm.hpp — C (M, N) += alpha A (M, K) B (K, N) for row-major C, with A and B each a
// row-major matrix or the transpose of one: the products of the linear layers.
//
// A blocked GEMM in the classic layout (Goto / BLIS), written for row-major C:
//   for each block of NC columns, each block of KC steps of k (K split evenly, KC <= 256):
//     pack B's (KC, NC) block into panels of NR = 3 (AVX-512) or 2 (AVX2) SIMD packets: kc
//     rows of NR values;
//     for each block of MC rows:
//       for each slab of MR rows of A (kept in L1), for each B panel (from L2): the register
//       tile C (MR, NR) += A slab (MR, kc) B panel (kc, NR), MR x NR / P accumulator
//       packets, each step of k one broadcast of A times NR / P loads of B.
// Each slab of A is packed (MR values per step of k, contiguous) just before the tiles that
// use it; packing is paid once per NC columns of B. Against reading A in place (row-major or
// transposed) in this order: linear backward 5-10% faster, forward unchanged (Zen 3, 2
// threads, alternating A/B), and A's rows no longer share L1 sets when the row stride is a
// multiple of 4 KiB (ViT-Base's fc2 input, 3072 floats; the 2048^3 probe).
// With AVX-512 the tile is 8 x 48 floats (24 of the 32 vector registers); Eigen 3.4's own
// kernel (48 x 4 in its column-major terms) reached 165-190 GFLOP/s per core on this model's
// products, this one 205-250 (dev numbers, one core, same machine and run).
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
// allocates nothing).
// tests/test_kernels.cpp compares it with reference::gemm (reference.hpp) at every edge and orientation.
#ifndef MAE_KERNELS_GEMM_HPP
#define MAE_KERNELS_GEMM_HPP

#include "../common.hpp"
#include "arch.hpp"

#include <algorithm>
#include <string>
#include <type_traits>
#include <vector>

namespace mae::kernels {

// A matrix operand: `rows x cols` of a row-major buffer with row stride ld, or (transposed)
// the transpose of a row-major buffer with row stride ld.
template <class S>
struct GemmOperand {
  const S* data;
  Index ld;
  bool transposed = false;
};

namespace gemm_detail {

// The register tile (arch.hpp): MR rows x NV packets of B.
inline constexpr int kNV = kGemmTilePackets;
inline constexpr Index kMR = kTileRows;
template <class S>
inline constexpr Index kP = kPacket<S>;
template <class S>
inline constexpr Index kNR = kNV* kP<S>;
// Cache blocks: an MR-row slab of A (KC x MR: 8 KiB of floats with AVX-512, 6 KiB with AVX2,
// packed) is reused from L1 by every B panel of the (KC x NC) block of B in L2.
inline constexpr Index kKC = 256;
// K split into blocks of equal length (at most KC; the last may be shorter): K = 544 gives
// 3 x 182 rather than 256 + 256 + 32, whose short block would pay the tile's loads and stores
// of C for little work. Depends on K only.
inline Index block_k(Index K) {
  const Index blocks = std::max<Index>(1, num_chunks(K, kKC));
  return std::max<Index>(1, num_chunks(K, blocks));  // 1 for K = 0: callers divide by it
}
inline constexpr Index kMC = 256;
template <class S>
inline constexpr Index kNC = 10 * kNR<S>;

// C (MR, NV packets) += alpha * A (MR, kc) * B panel (kc, NV packets), C row stride ldc; A
// packed, element (r, k) at a[k * MR + r].
template <class S, int NV>
inline void tile(S* c, Index ldc, const S* a, const S* bp, Index kc, S alpha) {
  using Pk = Packet<S>;
  constexpr Index P = kP<S>, MR = kMR, W = NV * P;
  Pk acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = ei::pset1<Pk>(S(0));
  for (Index k = 0; k < kc; ++k, bp += W, a += MR) {
    Pk b[NV];
    for (int v = 0; v < NV; ++v) b[v] = ei::pload<Pk>(bp + v * P);
    for (int r = 0; r < MR; ++r) {
      const Pk av = ei::pset1<Pk>(a[r]);
      for (int v = 0; v < NV; ++v) acc[r][v] = ei::pmadd(av, b[v], acc[r][v]);
    }
  }
  const Pk al = ei::pset1<Pk>(alpha);
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) {
      S* cr = c + r * ldc + v * P;
      ei::pstoreu(cr, ei::pmadd(al, acc[r][v], ei::ploadu<Pk>(cr)));
    }
}

// n values, n known at compile time: a few vector moves instead of a call to memmove.
template <Index n, class S>
inline void copy_fixed(S* out, const S* in) {
  for (Index i = 0; i < n; ++i) out[i] = in[i];
}

// Rows [i0, i0 + nr) of A (nr <= MR), k [p0, p0 + kc), as kc columns of MR values, zero past
// row nr (the tile always computes MR rows). It may write up to kASlack values past the slab.
// Transposing a row-major A in 8 x 8 register blocks instead of one value at a time: the
// linear layers 6-8% faster (forward and backward, Zen 3, 1 and 2 threads).
inline constexpr Index kASlack = 8;
template <class S>
inline void pack_a(S* out, GemmOperand<S> A, Index i0, Index nr, Index p0, Index kc) {
  if (nr < kMR) std::fill(out, out + kMR * kc, S(0));
  if (A.transposed) {  // A (r, k) = data[k ld + r]: each k's rows are contiguous
    const S* src = A.data + p0 * A.ld + i0;
    if (nr == kMR)
      for (Index k = 0; k < kc; ++k) copy_fixed<kMR>(out + k * kMR, src + k * A.ld);
    else
      for (Index k = 0; k < kc; ++k) std::copy_n(src + k * A.ld, nr, out + k * kMR);
    return;
  }
  const S* src = A.data + i0 * A.ld + p0;  // A (r, k) = src[r ld + k]: a transpose
  Index k0 = 0;
#ifdef EIGEN_VECTORIZE_AVX
  // 8 steps of k at a time: MR rows of 8 values, transposed in registers (rows past MR
  // zero); k's MR values then stored as 8, the extra 8 - MR spilling into k + 1's place
  // (rewritten by the next store) or, after the last k, into the buffer's slack (kASlack)
  static_assert(kMR <= 8 && 8 - kMR <= kASlack, "transpose8x8 packs at most 8 rows");
  if constexpr (std::is_same_v<S, float>)
    if (nr == kMR)
      for (; k0 + 8 <= kc; k0 += 8) transpose8x8(out + k0 * kMR, kMR, src + k0, A.ld, kMR);
#endif
  for (Index k = k0; k < kc; ++k)
    for (Index r = 0; r < nr; ++r) out[k * kMR + r] = src[r * A.ld + k];
}

// Panels of B's block k [p0, p0 + kc) x columns [j0, j0 + nc): panel q holds columns
// [q NR, q NR + NR) as kc rows of its width (NR, or the last panel's valid columns rounded up
// to whole packets, zero padded).
template <class S>
inline void pack_b(S* out, GemmOperand<S> B, Index p0, Index kc, Index j0, Index nc) {
  constexpr Index P = kP<S>, NR = kNR<S>;
  for (Index q = 0; q * NR < nc; ++q) {
    const Index c0 = j0 + q * NR, ncols = std::min(NR, j0 + nc - c0), w = num_chunks(ncols, P) * P;
    if (ncols < w) std::fill(out, out + w * kc, S(0));
    if (B.transposed)  // B (k, j) = data[j ld + k]: a transpose
      transpose_copy(out, w, B.data + c0 * B.ld + p0, B.ld, ncols, kc);
    else if (ncols == NR)  // B (k, j) = data[k ld + j]: each k's columns are contiguous
      for (Index k = 0; k < kc; ++k) copy_fixed<NR>(out + k * w, B.data + (p0 + k) * B.ld + c0);
    else
      for (Index k = 0; k < kc; ++k) std::copy_n(B.data + (p0 + k) * B.ld + c0, ncols, out + k * w);
    out += w * kc;
  }
}

// The tile at C's nr x ncols corner (nr <= MR, ncols <= NV packets): on C itself when whole,
// else on a copy of C's valid part in a full-size buffer (the same arithmetic), copied back.
template <class S, int NV>
inline void tile_at(S* c, Index ldc, const S* a, const S* bp, Index kc, S alpha, Index nr, Index ncols) {
  constexpr Index W = NV * kP<S>;
  if (nr == kMR && ncols == W) return tile<S, NV>(c, ldc, a, bp, kc, alpha);
  alignas(64) S t[kMR * W] = {};
  for (Index r = 0; r < nr; ++r) std::copy_n(c + r * ldc, ncols, t + r * W);
  tile<S, NV>(t, W, a, bp, kc, alpha);
  for (Index r = 0; r < nr; ++r) std::copy_n(t + r * W, ncols, c + r * ldc);
}

// Columns of B once packed: whole panels, the last one rounded up to whole packets.
template <class S>
inline Index packed_width(Index N) {
  constexpr Index P = kP<S>, NR = kNR<S>;
  return N / NR * NR + num_chunks(N % NR, P) * P;
}

// Where B packed beforehand (PackedB) holds the panels of k block [p0, p0 + kc) from column j0
// (a multiple of NR): every block of k holds the panels of all N columns, in order.
template <class S>
inline Index packed_offset(Index N, Index p0, Index kc, Index j0) {
  return p0 * packed_width<S>(N) + j0 * kc;
}

struct ASlabBuffer;   // thread_buffer tags: the packed slab of A,
struct BBlockBuffer;  // and the packed block of B

// B either packed here, block by block, or (packed != null) all packed before: for each block
// of KC steps of k, the panels of every column, i.e. block p0 at packed + p0 packed_width(N).
// Only C's columns [jb, je) (jb a multiple of NR); N is B's whole width.
template <class S>
inline void run(S* c, Index ldc, GemmOperand<S> A, GemmOperand<S> B, const S* packed, Index M, Index N, Index K,
                S alpha, Index jb, Index je) {
  constexpr Index P = kP<S>, MR = kMR, NR = kNR<S>, MC = kMC, NC = kNC<S>;
  S* const ap = thread_buffer<ASlabBuffer, S>(MR * kKC + kASlack);
  S* const bb = thread_buffer<BBlockBuffer, S>(NC * kKC);
  const Index KC = block_k(K);
  for (Index j0 = jb; j0 < je; j0 += NC) {
    const Index nc = std::min(NC, je - j0);
    for (Index p0 = 0; p0 < K; p0 += KC) {
      const Index kc = std::min(KC, K - p0);
      const S* bp = bb;
      if (packed)
        bp = packed + packed_offset<S>(N, p0, kc, j0);
      else
        pack_b(bb, B, p0, kc, j0, nc);
      for (Index i0 = 0; i0 < M; i0 += MC) {
        const Index mc = std::min(MC, M - i0);
        for (Index r0 = 0; r0 < mc; r0 += MR) {
          const Index i = i0 + r0, nr = std::min(MR, mc - r0);
          pack_a(ap, A, i, nr, p0, kc);  // A (r, k) at ap[k MR + r]
          for (Index jq = 0; jq * NR < nc; ++jq) {
            const Index c0 = jq * NR, ncols = std::min(NR, nc - c0), nv = num_chunks(ncols, P);
            const S* bq = bp + c0 * kc;  // the panels before this one are all NR wide
            S* cq = c + i * ldc + j0 + c0;
            static_assert(kNV == 2 || kNV == 3, "one case per panel width in packets");
            if (nv == kNV)
              tile_at<S, kNV>(cq, ldc, ap, bq, kc, alpha, nr, ncols);
            else if (nv == 2)  // the last panel may be narrower
              tile_at<S, 2>(cq, ldc, ap, bq, kc, alpha, nr, ncols);
            else
              tile_at<S, 1>(cq, ldc, ap, bq, kc, alpha, nr, ncols);
          }
        }
      }
    }
  }
}

}  // namespace gemm_detail

// C (M, N; row stride ldc) += alpha A B, A (M, K), B (K, N).
template <class S>
inline void gemm(S* c, Index ldc, GemmOperand<S> A, GemmOperand<S> B, Index M, Index N, Index K, S alpha = S(1)) {
  if (M == 0 || N == 0 || K == 0) return;
  gemm_detail::run(c, ldc, A, B, static_cast<const S*>(nullptr), M, N, K, alpha, Index(0), N);
}

// B (K, N) packed once for every product with it: a layer's weights, or the input its weight
// gradient is summed over, shared by the threads that compute the chunks of C. The same panels
// gemm packs on each call (so the same results, bit for bit), in one buffer of
// gemm_packed_size(K, N) values (aligned for Eigen's packets, as thread_buffer's are),
// packed in gemm_pack_units(K, N) independent pieces that the threads of a parallel loop share:
//   for (u = 0; u < gemm_pack_units<S>(K, N); ++u) gemm_pack_unit(buf, B, K, N, u);
//   gemm(c, ldc, A, PackedB<S>{buf, K, N}, M);
template <class S>
struct PackedB {
  const S* data;
  Index K, N;
};

template <class S>
inline Index gemm_packed_size(Index K, Index N) {
  return K * gemm_detail::packed_width<S>(N);
}
template <class S>
inline Index gemm_pack_units(Index K, Index N) {
  using namespace gemm_detail;
  return num_chunks(K, block_k(K)) * num_chunks(N, kNR<S>);
}
// Piece u: one panel of one block of k.
template <class S>
inline void gemm_pack_unit(S* out, GemmOperand<S> B, Index K, Index N, Index u) {
  using namespace gemm_detail;
  const Index kb = block_k(K), panels = num_chunks(N, kNR<S>), p0 = u / panels * kb, j0 = u % panels * kNR<S>;
  const Index kc = std::min(kb, K - p0);
  pack_b(out + packed_offset<S>(N, p0, kc, j0), B, p0, kc, j0, std::min(kNR<S>, N - j0));
}

// C (M, N; row stride ldc) += alpha A B, B packed as above.
template <class S>
inline void gemm(S* c, Index ldc, GemmOperand<S> A, const PackedB<S>& B, Index M, S alpha = S(1)) {
  if (M == 0 || B.N == 0 || B.K == 0) return;
  gemm_detail::run(c, ldc, A, GemmOperand<S>{nullptr, 0}, B.data, M, B.N, B.K, alpha, Index(0), B.N);
}

// gemm_columns: only C's columns [j_begin, j_end), the same values as the whole product there
// (so threads can share the columns of one C). j_begin and j_end are multiples of
// kGemmColumnStep (the width of B's panels) or B's width N.
template <class S>
inline constexpr Index kGemmColumnStep = gemm_detail::kNR<S>;

namespace gemm_detail {
inline void check_columns(Index j_begin, Index j_end, Index N, Index step) {
  const auto on_panel_edge = [&](Index j) { return j % step == 0 || j == N; };
  if (!on_panel_edge(j_begin) || !on_panel_edge(j_end) || j_begin > j_end || j_end > N)
    throw Error("gemm_columns: columns [" + std::to_string(j_begin) + ", " + std::to_string(j_end) +
                ") do not start and end on panels of " + std::to_string(step) +
                " columns (or at N = " + std::to_string(N) + ")");
}
}  // namespace gemm_detail

// B packed beforehand (PackedB).
template <class S>
inline void gemm_columns(S* c, Index ldc, GemmOperand<S> A, const PackedB<S>& B, Index M, Index j_begin, Index j_end,
                         S alpha = S(1)) {
  gemm_detail::check_columns(j_begin, j_end, B.N, kGemmColumnStep<S>);
  if (M == 0 || j_end == j_begin || B.K == 0) return;
  gemm_detail::run(c, ldc, A, GemmOperand<S>{nullptr, 0}, B.data, M, B.N, B.K, alpha, j_begin, j_end);
}
// B (K, N) packed here, only these columns' panels: when a thread owns a range of columns of a
// product with few rows, it packs its own part of B once, while it is used, instead of all
// threads sharing (and each reading all of) a B packed beforehand.
template <class S>
inline void gemm_columns(S* c, Index ldc, GemmOperand<S> A, GemmOperand<S> B, Index M, Index N, Index K, Index j_begin,
                         Index j_end, S alpha = S(1)) {
  gemm_detail::check_columns(j_begin, j_end, N, kGemmColumnStep<S>);
  if (M == 0 || j_end == j_begin || K == 0) return;
  gemm_detail::run(c, ldc, A, B, static_cast<const S*>(nullptr), M, N, K, alpha, j_begin, j_end);
}

}  // namespace mae::kernels

#endif  // MAE_KERNELS_GEMM_HPP
