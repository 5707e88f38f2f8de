// mae/kernels/format_scalar.hpp — the fp32 (and fp64) operand format of gemm.hpp's driver:
// operands kept in their own type, the register tile an FMA chain on Eigen's packets.
//
// The tile is MR x NV packets of C (arch.hpp: 8 x 3 with AVX-512, 6 x 2 with AVX2); each step
// of k is one broadcast of A times NV loads of B. A slab of MR rows of A is packed (MR values
// per step of k, contiguous) just before the tiles that use it. Against reading A in place
// (row-major or transposed): linear backward faster, forward unchanged, and A's rows no longer
// share L1 sets when the row stride is a multiple of 4 KiB (ViT-Base's fc2 input, 3072 floats);
// docs/performance.md has the measurements.
#ifndef MAE_KERNELS_FORMAT_SCALAR_HPP
#define MAE_KERNELS_FORMAT_SCALAR_HPP

#include "arch.hpp"
#include "../core/common.hpp"

#include <algorithm>
#include <type_traits>

namespace mae::kernels {

// A matrix operand: `rows x cols` of a row-major buffer with row stride ld, or (transposed)
// the transpose of a row-major buffer with row stride ld.
template <class S>
struct GemmOperand {
  const S* data;
  Index ld;
  bool transposed = false;
};

namespace formats {

template <class S>
struct Scalar {
  using Value = S;  // the operands' and C's type
  using Word = S;   // what packed operands hold
  static constexpr Index MR = kTileRows;
  static constexpr int NV = kGemmTilePackets;
  static constexpr Index P = kPacket<S>;  // columns per packet
  static constexpr Index NR = NV * P;     // columns per panel of B
  // Cache blocks: an MR-row slab of A (KC x MR: 8 KiB of floats with AVX-512, 6 KiB with AVX2)
  // is reused from L1 by every B panel of the (KC x NC) block of B in L2.
  static constexpr Index KC = 256, MC = 256, NC = 10 * NR;
  // K split into blocks of equal length (at most KC; the last may be shorter): K = 544 gives
  // 3 x 182 rather than 256 + 256 + 32, whose short block would pay the tile's loads and
  // stores of C for little work. Depends on K only.
  static Index block_k(Index K) {
    const Index blocks = std::max<Index>(1, num_chunks(K, KC));
    return std::max<Index>(1, num_chunks(K, blocks));  // 1 for K = 0: callers divide by it
  }
  // packed rows for kc steps of k
  static Index rows(Index kc) { return kc; }
  static constexpr bool kScales = true;  // the tile computes C += alpha A B

  // A as given (each slab is packed as it is used)
  using A = GemmOperand<S>;
  static A prepare_a(GemmOperand<S> a, Index, Index) { return a; }
  // A's slab, element (r, k) at p[k MR + r]
  using ATile = const S*;
  // Slab words per buffer: MR rows of KC steps, plus the transposes' spill (below)
  static constexpr Index kSlack = 8;
  static constexpr Index slab_size() { return MR * KC + kSlack; }

  // Rows [i0, i0 + nr) of A (nr <= MR), k [p0, p0 + kc), as kc columns of MR values, zero past
  // row nr (the tile always computes MR rows). It may write up to kSlack values past the slab.
  // Transposing a row-major A in 8 x 8 register blocks instead of one value at a time: the
  // linear layers 6-8% faster (forward and backward, Zen 3, 1 and 2 threads).
  static ATile a_tile(S* out, const A& a, Index i0, Index nr, Index p0, Index kc) {
    if (nr < MR) std::fill(out, out + MR * kc, S(0));
    if (a.transposed) {  // A (r, k) = data[k ld + r]: each k's rows are contiguous
      const S* src = a.data + p0 * a.ld + i0;
      if (nr == MR)
        for (Index k = 0; k < kc; ++k) copy_fixed<MR>(out + k * MR, src + k * a.ld);
      else
        for (Index k = 0; k < kc; ++k) std::copy_n(src + k * a.ld, nr, out + k * MR);
      return out;
    }
    const S* src = a.data + i0 * a.ld + p0;  // A (r, k) = src[r ld + k]: a transpose
    Index k0 = 0;
#ifdef EIGEN_VECTORIZE_AVX
    // 8 steps of k at a time: MR rows of 8 values, transposed in registers (rows past MR
    // zero); k's MR values then stored as 8, the extra 8 - MR spilling into k + 1's place
    // (rewritten by the next store) or, after the last k, into the buffer's slack
    static_assert(MR <= 8 && 8 - MR <= kSlack, "transpose8x8 packs at most 8 rows");
    if constexpr (std::is_same_v<S, float>)
      if (nr == MR)
        for (; k0 + 8 <= kc; k0 += 8) transpose8x8(out + k0 * MR, MR, src + k0, a.ld, MR);
#endif
    for (Index k = k0; k < kc; ++k)
      for (Index r = 0; r < nr; ++r) out[k * MR + r] = src[r * a.ld + k];
    return out;
  }

  // Panels of B's block k [p0, p0 + kc) x columns [j0, j0 + nc): panel q holds columns
  // [q NR, q NR + NR) as kc rows of its width (NR, or the last panel's valid columns rounded
  // up to whole packets, zero padded).
  static void pack_b(S* out, GemmOperand<S> B, Index p0, Index kc, Index j0, Index nc) {
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

  // C (MR, W packets) += alpha * A slab (MR, kc) * B panel (kc, W packets), C row stride ldc.
  template <int W>
  static void tile(S* c, Index ldc, ATile a, const S* bp, Index kc, S alpha) {
    using Pk = Packet<S>;
    Pk acc[MR][W];
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < W; ++v) acc[r][v] = ei::pset1<Pk>(S(0));
    for (Index k = 0; k < kc; ++k, bp += W * P, a += MR) {
      Pk b[W];
      for (int v = 0; v < W; ++v) b[v] = ei::pload<Pk>(bp + v * P);
      for (int r = 0; r < MR; ++r) {
        const Pk av = ei::pset1<Pk>(a[r]);
        for (int v = 0; v < W; ++v) acc[r][v] = ei::pmadd(av, b[v], acc[r][v]);
      }
    }
    const Pk al = ei::pset1<Pk>(alpha);
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < W; ++v) {
        S* cr = c + r * ldc + v * P;
        ei::pstoreu(cr, ei::pmadd(al, acc[r][v], ei::ploadu<Pk>(cr)));
      }
  }

 private:
  // n values, n known at compile time: a few vector moves instead of a call to memmove.
  template <Index n>
  static void copy_fixed(S* out, const S* in) {
    for (Index i = 0; i < n; ++i) out[i] = in[i];
  }
};

}  // namespace formats
}  // namespace mae::kernels

#endif  // MAE_KERNELS_FORMAT_SCALAR_HPP
