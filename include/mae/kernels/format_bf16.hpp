// mae/kernels/format_bf16.hpp — the bf16 operand formats of gemm.hpp's driver: fp32 operands
// rounded to bf16 pairs (bf16.hpp), products summed in fp32 (the recipe of PyTorch's CPU
// autocast for a linear layer).
//
// Both operands are packed as pairs of k: B's panels as NR words per pair; A is rounded once
// per product into words (along its rows of memory), which whole tiles of MR rows read in
// place (only a short last tile is copied into a zero-padded slab of MR words per pair).
// Two tiles read these words:
//   - Bf16Dot, where the compiler targets AVX512-BF16: one broadcast of A's pair and NV
//     vdpbf16ps per row, twice the steps of k per instruction of fp32's FMA, half the bytes
//     of B per step;
//   - Bf16Portable, everywhere: the same arithmetic in fp32 on the unpacked halves. A bf16
//     times a bf16 is exact in fp32 (8 + 8 significant bits), so acc + a b rounds once, as the
//     instruction's does, in the same order (the high half first): the same bits, except that
//     the instruction flushes subnormal inputs and results to zero (values below 1.2e-38).
// format_amx.hpp has the third, on AMX tiles.
#ifndef MAE_KERNELS_FORMAT_BF16_HPP
#define MAE_KERNELS_FORMAT_BF16_HPP

#include "arch.hpp"
#include "bf16.hpp"
#include "../core/common.hpp"
#include "format_scalar.hpp"  // GemmOperand

#include <algorithm>

namespace mae::kernels::formats {

// What every bf16 format shares: the words, the blocking of k, the packing of both operands.
struct Bf16Pairs {
  using Value = float;
  using Word = bf16::Word;
  static constexpr Index MR = kTileRows;
  static constexpr int NV = kGemmTilePackets;
  static constexpr Index P = kPacket<float>;  // 32-bit lanes per packet (16 with AVX-512)
  static constexpr Index NR = NV * P;
  static constexpr Index KC = 512, MC = 256, NC = 10 * NR;  // KC: 256 pairs, a slab as fp32's
  // K in blocks of equal, even length (at most KC): each block's pairs are whole, only the
  // last block may end on a half pair. Depends on K only.
  static Index block_k(Index K) {
    const Index blocks = std::max<Index>(1, num_chunks(K, KC));
    return std::max<Index>(2, num_chunks(num_chunks(K, blocks), 2) * 2);
  }
  static Index rows(Index kc) { return bf16::pairs(kc); }
  // The tiles add A B to C: alpha is 1 (gemm.hpp refuses another). Scaling in the portable
  // tile's store made GCC compile the whole tile 5% slower (linear layers, Zen 3).
  static constexpr bool kScales = false;

  // A (M, K) rounded to pairs once per product, in a buffer of the calling thread
  // (bf16::round_words' layout)
  struct A {
    const Word* data;
    bf16::WordStrides s;
  };
  struct AWordsBuffer;
  static A prepare_a(GemmOperand<float> a, Index M, Index K) {
    Word* const w = thread_buffer<AWordsBuffer, Word>(M * bf16::pairs(K));
    return {w, a.transposed ? bf16::round_words(w, a.data, 1, a.ld, M, K) : bf16::round_words(w, a.data, a.ld, 1, M, K)};
  }

  // MR rows of A's pairs, pair (r, q) at p[r rs + q qs]
  struct ATile {
    const Word* p;
    Index rs, qs;
  };
  static constexpr Index slab_size() { return MR * (KC / 2); }
  // Rows [i0, i0 + nr) of A from step p0 (even), kc steps: a whole tile reads the words in
  // place; a short one is copied into the slab as np columns of MR words, zero past row nr.
  static ATile a_tile(Word* slab, const A& a, Index i0, Index nr, Index p0, Index kc) {
    const Index q0 = p0 / 2, np = bf16::pairs(kc);
    if (nr == MR) return {a.data + i0 * a.s.rs + q0 * a.s.qs, a.s.rs, a.s.qs};
    std::fill(slab, slab + MR * np, Word(0));
    for (Index q = 0; q < np; ++q)
      for (Index r = 0; r < nr; ++r) slab[q * MR + r] = a.data[(i0 + r) * a.s.rs + (q0 + q) * a.s.qs];
    return {slab, 1, MR};
  }

  // B's block k [p0, p0 + kc) x columns [j0, j0 + nc), as bf16::pack_panels' panels of NR
  static void pack_b(Word* out, GemmOperand<float> B, Index p0, Index kc, Index j0, Index nc) {
    if (B.transposed)  // B (k, j) = data[j ld + k]
      bf16::pack_panels<NR>(out, B.data + j0 * B.ld + p0, 1, B.ld, kc, nc);
    else
      bf16::pack_panels<NR>(out, B.data + p0 * B.ld + j0, B.ld, 1, kc, nc);
  }
};

// C (MR, W packets) += A (MR, pairs(kc)) B panel, in fp32 on the unpacked halves: per pair, the
// high half first, as vdpbf16ps.
struct Bf16Portable : Bf16Pairs {
  template <int W>
  static void tile(float* c, Index ldc, ATile a, const Word* bp, Index kc, float /*alpha: 1*/) {
    constexpr Index n = W * P;
    const Index np = bf16::pairs(kc);
    alignas(64) float acc[MR][n] = {};
    for (Index q = 0; q < np; ++q, bp += n) {
      alignas(64) float bh[n], bl[n];
      for (Index j = 0; j < n; ++j) bh[j] = bf16::high(bp[j]), bl[j] = bf16::low(bp[j]);
      for (Index r = 0; r < MR; ++r) {
        const Word aw = a.p[r * a.rs + q * a.qs];
        const float ah = bf16::high(aw), al = bf16::low(aw);
        for (Index j = 0; j < n; ++j) acc[r][j] += ah * bh[j];
        for (Index j = 0; j < n; ++j) acc[r][j] += al * bl[j];
      }
    }
    for (Index r = 0; r < MR; ++r)
      for (Index j = 0; j < n; ++j) c[r * ldc + j] += acc[r][j];
  }
};

#ifdef __AVX512BF16__
// The same on vdpbf16ps: acc[j] += a.hi b[j].hi, then += a.lo b[j].lo, per lane.
struct Bf16Dot : Bf16Pairs {
  static_assert(P == 16, "AVX512-BF16 works on 16 lanes: Eigen's float packet must be AVX-512's");
  template <int W>
  static void tile(float* c, Index ldc, ATile a, const Word* bp, Index kc, float /*alpha: 1*/) {
    const Index np = bf16::pairs(kc);
    __m512 acc[MR][W];
    for (Index r = 0; r < MR; ++r)
      for (int v = 0; v < W; ++v) acc[r][v] = _mm512_setzero_ps();
    const Word* aq = a.p;
    for (Index q = 0; q < np; ++q, aq += a.qs, bp += W * P) {
      __m512bh b[W];
      for (int v = 0; v < W; ++v) b[v] = (__m512bh)_mm512_load_si512(bp + v * P);
      for (Index r = 0; r < MR; ++r) {
        const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(aq[r * a.rs]));
        for (int v = 0; v < W; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, b[v]);
      }
    }
    for (Index r = 0; r < MR; ++r)
      for (int v = 0; v < W; ++v) {
        float* cr = c + r * ldc + v * P;
        _mm512_storeu_ps(cr, _mm512_add_ps(_mm512_loadu_ps(cr), acc[r][v]));
      }
  }
};
#endif

}  // namespace mae::kernels::formats

#endif  // MAE_KERNELS_FORMAT_BF16_HPP
