// mae/kernels/gemm_bf16.hpp — C (M, N) += bf16(A) (M, K) bf16(B) (K, N) with fp32 accumulation:
// the products of the linear layers under bf16 mixed precision (the recipe of PyTorch's CPU
// autocast: fp32 operands rounded to bf16, round to nearest even, products summed in fp32).
//
// The same blocking as gemm.hpp (read that first); what differs is the packed operands. Both
// are packed as bf16 *pairs*: one 32-bit word holds two consecutive steps of k,
//   word = bf16(x[k]) | bf16(x[k + 1]) << 16      (k even; a zero pads an odd K),
// B's panels as NR words per pair of k; A is rounded once per call into words (along its rows
// of memory), which whole tiles of MR rows read in place (only a short last tile is copied into
// a zero-padded slab of MR words per pair of k). That is the operand
// layout of AVX512-BF16's vdpbf16ps (acc[j] += a.hi b[j].hi, then += a.lo b[j].lo, per 32-bit
// lane j), so where the compiler targets it (__AVX512BF16__) the tile is one broadcast of A's
// pair and NV dot-product instructions per row: twice the steps of k per instruction of fp32's
// FMA, half the bytes of B per step.
// Everywhere else a portable tile does the same arithmetic in fp32 on the same packed words:
// a bf16 times a bf16 is exact in fp32 (8 + 8 significant bits), so acc + a b rounds once,
// as the instruction's does, in the same order (the high half first). The two paths give the
// same bits (tests/test_kernels.cpp checks it where both are compiled), except that the
// instruction flushes subnormal inputs and results to zero (values below 1.2e-38).
// Rounding to bf16 gives to_bf16's bits (below, as PyTorch's c10::BFloat16) on every CPU:
// vectorized with vcvtne2ps2bf16 where AVX512-BF16 is compiled, scalar elsewhere.
// Where the compiler targets AMX-BF16 as well (__AMX_TILE__, __AMX_BF16__) and Linux grants
// the process the tile state, run_amx takes the same packed words 16 rows x 16 pairs at a time
// into tdpbf16ps (8x the multiply-adds per instruction of vdpbf16ps): B's panels are already
// the tiles' layout; A's rounded pairs are read as rows. The tile sums 32 terms inside one
// instruction in its own order, so its bits differ from the other two paths' by float rounding
// (still one order per element of C, whatever the threads).
//
// A B used by many blocks of rows (a layer's weights) is packed once per product (PackedBf16),
// as gemm.hpp's PackedB, and rounded as it is packed: a layer's weights are rounded once by its
// forward and once by its backward, O(in out) work beside the product's O(rows in out), a
// fraction 1/rows of it. Each element of C takes its k terms in one order whatever the chunk
// of C or the thread (bitwise the same for any thread count). Buffers as gemm.hpp: per
// thread, grow-only.
#ifndef MAE_KERNELS_GEMM_BF16_HPP
#define MAE_KERNELS_GEMM_BF16_HPP

#include "../common.hpp"
#include "arch.hpp"
#include "gemm.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

#ifdef __AVX512BF16__
#include <immintrin.h>
#endif
#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__linux__)
#define MAE_AMX_BF16 1
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace mae::kernels {

// fp32 -> bf16 bits, round to nearest even (every NaN becomes the quiet NaN 0x7fc0): the
// rounding of PyTorch's c10::BFloat16 (round_to_nearest_even) and so of its autocast.
inline std::uint16_t to_bf16(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  const std::uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return static_cast<std::uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? 0x7fc0u : rounded);  // branch-free: vectorizes
}
inline float from_bf16(std::uint16_t b) {
  const std::uint32_t u = static_cast<std::uint32_t>(b) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}
// x rounded to the nearest bf16, as an fp32 value
inline float round_bf16(float x) { return from_bf16(to_bf16(x)); }

// Where the tuned path is compiled: true with AVX512-BF16, false for the portable tile.
#ifdef __AVX512BF16__
inline constexpr bool kNativeBf16 = true;
#else
inline constexpr bool kNativeBf16 = false;
#endif

// Whether the products run on AMX-BF16 tiles: compiled where the compiler targets AMX (as
// -march=sapphirerapids or native on such a CPU does), used where Linux grants this process
// the tile state (the CPU has AMX). Asked once per process.
inline bool gemm_bf16_uses_amx() {
#ifdef MAE_AMX_BF16
  static const bool granted = syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) == 0;
  return granted;
#else
  return false;
#endif
}

namespace gemm_bf16_detail {

using Word = std::uint32_t;  // two bf16: k (low half) and k + 1 (high half)
inline Word pair(float lo, float hi) { return static_cast<Word>(to_bf16(lo)) | static_cast<Word>(to_bf16(hi)) << 16; }
inline float high(Word w) {
  const Word u = w & 0xffff0000u;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}
inline float low(Word w) {
  const Word u = w << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

// Rounding many values into words, the loops of packing. With AVX512-BF16, 32 values per
// vcvtne2ps2bf16 (round to nearest even, as to_bf16); the instruction flushes subnormal inputs
// to zero and keeps a NaN's payload, so a group of values holding either takes the scalar
// to_bf16: the words are to_bf16's, bit for bit, on every CPU. (Compiled where the compiler
// targets AVX512-BF16 with AVX512-BW and -DQ, as every CPU with AVX512-BF16 has.)
//   pair_along: w[i] = pair(x[2 i], x[2 i + 1]), i < n (pairs of consecutive values);
//   pair_rows:  w[i] = pair(lo[i], hi[i]), i < n (pairs across two rows).
#if defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__AVX512DQ__)
#define MAE_BF16_VECTOR_ROUNDING 1
inline __mmask16 bf16_special(__m512 x) { return _mm512_fpclass_ps_mask(x, 0x01 | 0x80 | 0x20); }  // NaN, subnormal
#endif
inline void pair_along(Word* w, const float* x, Index n) {
  Index i = 0;
#ifdef MAE_BF16_VECTOR_ROUNDING
  for (; i + 16 <= n; i += 16) {
    const __m512 a = _mm512_loadu_ps(x + 2 * i), b = _mm512_loadu_ps(x + 2 * i + 16);
    if (bf16_special(a) | bf16_special(b)) {
      for (Index j = i; j < i + 16; ++j) w[j] = pair(x[2 * j], x[2 * j + 1]);
      continue;
    }
    _mm512_storeu_si512(w + i, (__m512i)_mm512_cvtne2ps_pbh(b, a));  // b's values are the high 16 bf16
  }
#endif
  for (; i < n; ++i) w[i] = pair(x[2 * i], x[2 * i + 1]);
}
inline void pair_rows(Word* w, const float* lo, const float* hi, Index n) {
  Index i = 0;
#ifdef MAE_BF16_VECTOR_ROUNDING
  // lo's 16 bf16 then hi's, interleaved: bf16 2j <- j, 2j + 1 <- 16 + j
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
                                              6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  for (; i + 16 <= n; i += 16) {
    const __m512 a = _mm512_loadu_ps(lo + i), b = _mm512_loadu_ps(hi + i);
    if (bf16_special(a) | bf16_special(b)) {
      for (Index j = i; j < i + 16; ++j) w[j] = pair(lo[j], hi[j]);
      continue;
    }
    _mm512_storeu_si512(w + i, _mm512_permutexvar_epi16(interleave, (__m512i)_mm512_cvtne2ps_pbh(b, a)));
  }
#endif
  for (; i < n; ++i) w[i] = pair(lo[i], hi[i]);
}

inline constexpr int kNV = kGemmTilePackets;
inline constexpr Index kMR = kTileRows;
inline constexpr Index kP = kPacket<float>;  // 32-bit lanes per packet (16 with AVX-512)
inline constexpr Index kNR = kNV * kP;
// K in blocks of equal, even length (at most KC): each block's pairs are whole, only the last
// block may end on a half pair. Depends on K only.
inline constexpr Index kKC = 512;  // 256 pairs: a slab of A is MR x 256 words, as fp32's
inline Index block_k(Index K) {
  const Index blocks = std::max<Index>(1, num_chunks(K, kKC));
  return std::max<Index>(2, num_chunks(num_chunks(K, blocks), 2) * 2);
}
inline Index pairs(Index kc) { return num_chunks(kc, 2); }
inline constexpr Index kMC = 256;
inline constexpr Index kNC = 10 * kNR;

// Words laid out with a stride per row and per pair: pair (r, q) at p[r rs + q qs]. A tile's
// rows of A's pairs are read where they lie (a packed slab: rs = 1, qs = MR; A's rounded words
// themselves: rs = 1 or qs = 1).
struct WordStrides {
  Index rs, qs;
};
struct ATile {
  const Word* p;
  Index rs, qs;
};

// A (M, K), element (i, k) at a[i rs + k cs], rounded into pairs, read along A's rows of memory:
// pair (i, q) at out[i pairs(K) + q] (returned as {pairs(K), 1}), or where A's steps of k are
// its rows of memory (a transposed view, rs == 1) at out[q M + i] (returned as {1, M}).
// The A operands of the linear layers (round_a) and of attention's products (small_gemm.hpp).
inline WordStrides round_words(Word* out, const float* a, Index rs, Index cs, Index M, Index K) {
  const Index np = pairs(K), whole = K / 2;
  if (cs == 1) {
    for (Index i = 0; i < M; ++i) {
      pair_along(out + i * np, a + i * rs, whole);
      if (K % 2) out[i * np + whole] = pair(a[i * rs + K - 1], 0.0f);
    }
    return {np, 1};
  }
  if (rs == 1) {
    for (Index q = 0; q < whole; ++q) pair_rows(out + q * M, a + 2 * q * cs, a + (2 * q + 1) * cs, M);
    if (K % 2)
      for (Index i = 0; i < M; ++i) out[whole * M + i] = pair(a[(K - 1) * cs + i], 0.0f);
    return {1, M};
  }
  for (Index i = 0; i < M; ++i)
    for (Index q = 0; q < np; ++q)
      out[i * np + q] = pair(a[i * rs + 2 * q * cs], 2 * q + 1 < K ? a[i * rs + (2 * q + 1) * cs] : 0.0f);
  return {np, 1};
}

// B's steps of k [0, kc) x columns [0, nc), B (k, j) at b[k rs + j cs], as panels of NR
// columns: panel c, from out + c NR pairs(kc), holds pairs(kc) rows of its width (NR, or the
// last panel's valid columns rounded up to whole packets, zero padded). The B operands of the
// linear layers (NR = kNR, pack_b) and of attention's products (NR = one packet, small_gemm.hpp).
template <Index NR>
MAE_ALWAYS_INLINE void pack_panels(Word* out, const float* b, Index rs, Index cs, Index kc, Index nc) {
  const Index np = pairs(kc), whole = kc / 2;
  for (Index c0 = 0; c0 < nc; c0 += NR, out += NR * np) {
    const Index ncols = std::min(NR, nc - c0), w = num_chunks(ncols, kP) * kP;
    if (ncols < w) std::fill(out, out + w * np, Word(0));
    if (rs == 1) {  // column j's steps of k contiguous: pairs along it, then across the panel
      constexpr Index kChunk = kKC / 2;
      Word col[kChunk];
      for (Index j = 0; j < ncols; ++j) {
        const float* src = b + (c0 + j) * cs;
        for (Index q0 = 0; q0 < whole; q0 += kChunk) {
          const Index n = std::min(kChunk, whole - q0);
          pair_along(col, src + 2 * q0, n);
          for (Index q = 0; q < n; ++q) out[(q0 + q) * w + j] = col[q];
        }
        if (kc % 2) out[whole * w + j] = pair(src[kc - 1], 0.0f);
      }
    } else if (cs == 1) {  // each step's columns contiguous: pairs across two of B's rows
      for (Index q = 0; q < whole; ++q) pair_rows(out + q * w, b + 2 * q * rs + c0, b + (2 * q + 1) * rs + c0, ncols);
      if (kc % 2)
        for (Index j = 0; j < ncols; ++j) out[whole * w + j] = pair(b[(kc - 1) * rs + c0 + j], 0.0f);
    } else {
      for (Index q = 0; q < np; ++q)
        for (Index j = 0; j < ncols; ++j) {
          const float* src = b + 2 * q * rs + (c0 + j) * cs;
          out[q * w + j] = pair(src[0], 2 * q + 1 < kc ? src[rs] : 0.0f);
        }
    }
  }
}

// A (M, K) rounded to bf16 pairs once per call, in a buffer of the calling thread (round_words'
// layout), which whole tiles then read in place (tile), a short last tile through a
// zero-padded slab, without rounding again.
struct AWords {
  const Word* data;
  WordStrides s;
  // the words from row i, pair q on
  ATile tile(Index i, Index q) const { return {data + i * s.rs + q * s.qs, s.rs, s.qs}; }
};
struct AWordsBuffer;
inline AWords round_a(GemmOperand<float> A, Index M, Index K) {
  Word* const w = thread_buffer<AWordsBuffer, Word>(M * pairs(K));
  return {w, A.transposed ? round_words(w, A.data, 1, A.ld, M, K) : round_words(w, A.data, A.ld, 1, M, K)};
}

// Rows [i0, i0 + nr) of A, pairs [q0, q0 + np), as np columns of MR words, zero past row nr
// (run packs only a short last tile: whole ones read the words in place).
inline void pack_a(Word* out, const AWords& A, Index i0, Index nr, Index q0, Index np) {
  if (nr < kMR) std::fill(out, out + kMR * np, Word(0));
  for (Index q = 0; q < np; ++q)
    for (Index r = 0; r < nr; ++r) out[q * kMR + r] = A.data[(i0 + r) * A.s.rs + (q0 + q) * A.s.qs];
}

// B's block k [p0, p0 + kc) x columns [j0, j0 + nc), as pack_panels' panels of NR columns.
inline void pack_b(Word* out, GemmOperand<float> B, Index p0, Index kc, Index j0, Index nc) {
  if (B.transposed)  // B (k, j) = data[j ld + k]
    pack_panels<kNR>(out, B.data + j0 * B.ld + p0, 1, B.ld, kc, nc);
  else
    pack_panels<kNR>(out, B.data + p0 * B.ld + j0, B.ld, 1, kc, nc);
}

// C (MR, NV packets) += A (MR, np pairs) B panel (np pairs, NV packets), in fp32 on the
// unpacked halves: per pair, the high half first, as vdpbf16ps.
template <int NV>
inline void tile_portable(float* c, Index ldc, ATile a, const Word* bp, Index np) {
  constexpr Index W = NV * kP;
  alignas(64) float acc[kMR][W] = {};
  for (Index q = 0; q < np; ++q, bp += W) {
    alignas(64) float bh[W], bl[W];
    for (Index j = 0; j < W; ++j) bh[j] = high(bp[j]), bl[j] = low(bp[j]);
    for (Index r = 0; r < kMR; ++r) {
      const Word aw = a.p[r * a.rs + q * a.qs];
      const float ah = high(aw), al = low(aw);
      for (Index j = 0; j < W; ++j) acc[r][j] += ah * bh[j];
      for (Index j = 0; j < W; ++j) acc[r][j] += al * bl[j];
    }
  }
  for (Index r = 0; r < kMR; ++r)
    for (Index j = 0; j < W; ++j) c[r * ldc + j] += acc[r][j];
}

#ifdef __AVX512BF16__
static_assert(kP == 16, "AVX512-BF16 works on 16 lanes: Eigen's float packet must be AVX-512's");
template <int NV>
inline void tile_native(float* c, Index ldc, ATile a, const Word* bp, Index np) {
  constexpr Index W = NV * kP;
  __m512 acc[kMR][NV];
  for (Index r = 0; r < kMR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  const Word* aq = a.p;
  for (Index q = 0; q < np; ++q, aq += a.qs, bp += W) {
    __m512bh b[NV];
    for (int v = 0; v < NV; ++v) b[v] = (__m512bh)_mm512_load_si512(bp + v * kP);
    for (Index r = 0; r < kMR; ++r) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(aq[r * a.rs]));
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, b[v]);
    }
  }
  for (Index r = 0; r < kMR; ++r)
    for (int v = 0; v < NV; ++v) {
      float* cr = c + r * ldc + v * kP;
      _mm512_storeu_ps(cr, _mm512_add_ps(_mm512_loadu_ps(cr), acc[r][v]));
    }
}
#endif

template <bool Native, int NV>
inline void tile(float* c, Index ldc, ATile a, const Word* bp, Index np) {
#ifdef __AVX512BF16__
  if constexpr (Native) return tile_native<NV>(c, ldc, a, bp, np);
#endif
  tile_portable<NV>(c, ldc, a, bp, np);
}

// The tile at C's nr x ncols corner: on C itself when whole, else on a copy (as gemm.hpp).
template <bool Native, int NV>
inline void tile_at(float* c, Index ldc, ATile a, const Word* bp, Index np, Index nr, Index ncols) {
  constexpr Index W = NV * kP;
  if (nr == kMR && ncols == W) return tile<Native, NV>(c, ldc, a, bp, np);
  alignas(64) float t[kMR * W] = {};
  for (Index r = 0; r < nr; ++r) std::copy_n(c + r * ldc, ncols, t + r * W);
  tile<Native, NV>(t, W, a, bp, np);
  for (Index r = 0; r < nr; ++r) std::copy_n(t + r * W, ncols, c + r * ldc);
}

inline Index packed_width(Index N) { return N / kNR * kNR + num_chunks(N % kNR, kP) * kP; }
// Where block k [p0, p0 + kc) of a B packed beforehand holds the panels from column j0.
inline Index packed_offset(Index N, Index p0, Index kc, Index j0) { return p0 / 2 * packed_width(N) + j0 * pairs(kc); }

struct ASlabBuffer;
struct BBlockBuffer;

// As gemm_detail::run: B packed here block by block, or (packed != null) beforehand; only C's
// columns [jb, je).
template <bool Native>
inline void run(float* c, Index ldc, GemmOperand<float> A, GemmOperand<float> B, const Word* packed, Index M, Index N,
                Index K, Index jb, Index je) {
  Word* const ap = thread_buffer<ASlabBuffer, Word>(kMR * pairs(kKC));
  Word* const bb = thread_buffer<BBlockBuffer, Word>(kNC * pairs(kKC));
  const Index KC = block_k(K);
  const AWords aw = round_a(A, M, K);
  for (Index j0 = jb; j0 < je; j0 += kNC) {
    const Index nc = std::min(kNC, je - j0);
    for (Index p0 = 0; p0 < K; p0 += KC) {
      const Index kc = std::min(KC, K - p0), np = pairs(kc);
      const Word* bp = bb;
      if (packed)
        bp = packed + packed_offset(N, p0, kc, j0);
      else
        pack_b(bb, B, p0, kc, j0, nc);
      for (Index i0 = 0; i0 < M; i0 += kMC) {
        const Index mc = std::min(kMC, M - i0);
        for (Index r0 = 0; r0 < mc; r0 += kMR) {
          const Index i = i0 + r0, nr = std::min(kMR, mc - r0);
          // whole tiles read A's rounded words in place; the last, short one a zero padded slab
          ATile at{ap, 1, kMR};
          if (nr < kMR)
            pack_a(ap, aw, i, nr, p0 / 2, np);
          else
            at = aw.tile(i, p0 / 2);
          for (Index c0 = 0; c0 < nc; c0 += kNR) {
            const Index ncols = std::min(kNR, nc - c0), nv = num_chunks(ncols, kP);
            const Word* bq = bp + c0 * np;
            float* cq = c + i * ldc + j0 + c0;
            static_assert(kNV == 2 || kNV == 3, "one case per panel width in packets");
            if (nv == kNV)
              tile_at<Native, kNV>(cq, ldc, at, bq, np, nr, ncols);
            else if (nv == 2)
              tile_at<Native, 2>(cq, ldc, at, bq, np, nr, ncols);
            else
              tile_at<Native, 1>(cq, ldc, at, bq, np, nr, ncols);
          }
        }
      }
    }
  }
}

#ifdef MAE_AMX_BF16
// AMX-BF16: tdpbf16ps multiplies a tile of A (16 rows x 16 pairs) by a tile of B (16 pairs x
// 16 columns), the words laid out as packed here, into a 16 x 16 fp32 tile of C. One panel
// of B (NV packets of columns) is NV such tiles side by side, read in place with the panel's
// stride; A is read from its rounded rows (row-major words). A block of C of 16 rows x one
// panel lives in NV accumulator tiles (tmm0-2) over the whole block of k; A's tile is tmm3,
// B's tmm4-6. Rows past M and pairs past the block come from zeroed copies, so the tile
// shapes never change. Each element of C still takes its k terms in one order whatever the
// split of the columns (the same bits for any thread count); the order inside an
// instruction is the hardware's, so the bits differ from vdpbf16ps's by float rounding.
struct TileConfig {
  std::uint8_t palette = 1, start_row = 0, reserved[14] = {};
  std::uint16_t bytes_per_row[16] = {};
  std::uint8_t rows[16] = {};
};
inline void configure_tiles() {  // per thread: tmm0-6, 16 rows of 64 bytes
  TileConfig t;
  for (int i = 0; i < 7; ++i) t.rows[i] = 16, t.bytes_per_row[i] = 64;
  _tile_loadconfig(&t);
}

// C (rows <= 16, ncols <= NV 16) += A (rows, np pairs; row stride lda words) B panel (np
// pairs, width NV 16 words).
template <int NV>
inline void amx_block(float* c, Index ldc, const Word* a, Index lda, Index rows, const Word* panel, Index np,
                      Index ncols) {
  constexpr Index W = NV * 16;
  alignas(64) float ct[16 * W];
  const bool whole = rows == 16 && ncols == W;
  if (whole) {
    _tile_loadd(0, c, ldc * 4);
    if constexpr (NV > 1) _tile_loadd(1, c + 16, ldc * 4);
    if constexpr (NV > 2) _tile_loadd(2, c + 32, ldc * 4);
  } else {
    std::fill(ct, ct + 16 * W, 0.0f);
    for (Index r = 0; r < rows; ++r) std::copy_n(c + r * ldc, ncols, ct + r * W);
    _tile_loadd(0, ct, W * 4);
    if constexpr (NV > 1) _tile_loadd(1, ct + 16, W * 4);
    if constexpr (NV > 2) _tile_loadd(2, ct + 32, W * 4);
  }
  alignas(64) Word at[16 * 16], bt[16 * W];
  for (Index q = 0; q < np; q += 16) {
    const Index qn = std::min<Index>(16, np - q);
    if (rows == 16 && qn == 16) {
      _tile_loadd(3, a + q, lda * 4);
    } else {
      std::fill(at, at + 16 * 16, Word(0));
      for (Index r = 0; r < rows; ++r) std::copy_n(a + r * lda + q, qn, at + r * 16);
      _tile_loadd(3, at, 64);
    }
    const Word* b = panel + q * W;
    Index ldb = W;
    if (qn < 16) {
      std::fill(bt, bt + 16 * W, Word(0));
      std::copy_n(b, qn * W, bt);
      b = bt;
    }
    _tile_loadd(4, b, ldb * 4);
    _tile_dpbf16ps(0, 3, 4);
    if constexpr (NV > 1) {
      _tile_loadd(5, b + 16, ldb * 4);
      _tile_dpbf16ps(1, 3, 5);
    }
    if constexpr (NV > 2) {
      _tile_loadd(6, b + 32, ldb * 4);
      _tile_dpbf16ps(2, 3, 6);
    }
  }
  float* out = whole ? c : ct;
  const Index ldo = whole ? ldc : W;
  _tile_stored(0, out, ldo * 4);
  if constexpr (NV > 1) _tile_stored(1, out + 16, ldo * 4);
  if constexpr (NV > 2) _tile_stored(2, out + 32, ldo * 4);
  if (!whole)
    for (Index r = 0; r < rows; ++r) std::copy_n(ct + r * W, ncols, c + r * ldc);
}

struct AmxRowsBuffer;
// As run, on AMX tiles.
inline void run_amx(float* c, Index ldc, GemmOperand<float> A, GemmOperand<float> B, const Word* packed, Index M,
                    Index N, Index K, Index jb, Index je) {
  static_assert(kP == 16, "AMX tiles hold 16 fp32 columns: the packets of B's panels must be AVX-512's");
  configure_tiles();
  Word* const bb = thread_buffer<BBlockBuffer, Word>(kNC * pairs(kKC));
  const Index KC = block_k(K), npk = pairs(K);
  AWords aw = round_a(A, M, K);
  if (aw.s.qs != 1) {  // the tiles read A's rows: transpose the words once
    Word* const rows = thread_buffer<AmxRowsBuffer, Word>(M * npk);
    for (Index q = 0; q < npk; ++q)
      for (Index r = 0; r < M; ++r) rows[r * npk + q] = aw.data[q * aw.s.qs + r * aw.s.rs];
    aw = AWords{rows, {npk, 1}};
  }
  for (Index j0 = jb; j0 < je; j0 += kNC) {
    const Index nc = std::min(kNC, je - j0);
    for (Index p0 = 0; p0 < K; p0 += KC) {
      const Index kc = std::min(KC, K - p0), np = pairs(kc);
      const Word* bp = bb;
      if (packed)
        bp = packed + packed_offset(N, p0, kc, j0);
      else
        pack_b(bb, B, p0, kc, j0, nc);
      for (Index c0 = 0; c0 < nc; c0 += kNR) {
        const Index ncols = std::min(kNR, nc - c0), nv = num_chunks(ncols, kP);
        const Word* panel = bp + c0 * np;
        for (Index i = 0; i < M; i += 16) {
          const Index rows = std::min<Index>(16, M - i);
          float* cq = c + i * ldc + j0 + c0;
          const Word* aq = aw.data + i * aw.s.rs + p0 / 2;
          if (nv == 3)
            amx_block<3>(cq, ldc, aq, aw.s.rs, rows, panel, np, ncols);
          else if (nv == 2)
            amx_block<2>(cq, ldc, aq, aw.s.rs, rows, panel, np, ncols);
          else
            amx_block<1>(cq, ldc, aq, aw.s.rs, rows, panel, np, ncols);
        }
      }
    }
  }
  _tile_release();
}
#endif

// The tuned path: AMX tiles where granted, else vdpbf16ps where compiled, else portable.
inline void run_best(float* c, Index ldc, GemmOperand<float> A, GemmOperand<float> B, const Word* packed, Index M,
                     Index N, Index K, Index jb, Index je) {
#ifdef MAE_AMX_BF16
  if (gemm_bf16_uses_amx()) return run_amx(c, ldc, A, B, packed, M, N, K, jb, je);
#endif
  run<kNativeBf16>(c, ldc, A, B, packed, M, N, K, jb, je);
}

}  // namespace gemm_bf16_detail

// C (M, N; row stride ldc) += bf16(A) bf16(B), A (M, K), B (K, N) fp32, products summed in fp32.
inline void gemm_bf16(float* c, Index ldc, GemmOperand<float> A, GemmOperand<float> B, Index M, Index N, Index K) {
  if (M == 0 || N == 0 || K == 0) return;
  gemm_bf16_detail::run_best(c, ldc, A, B, nullptr, M, N, K, 0, N);
}

// B (K, N) rounded to bf16 and packed once for every product with it (as gemm.hpp's PackedB):
//   for (u = 0; u < gemm_bf16_pack_units(K, N); ++u) gemm_bf16_pack_unit(buf, B, K, N, u);
//   gemm_bf16(c, ldc, A, PackedBf16{buf, K, N}, M);
// in one buffer of gemm_bf16_packed_size(K, N) words, 64-byte aligned (thread_buffer's are).
struct PackedBf16 {
  const std::uint32_t* data;
  Index K, N;
};
inline Index gemm_bf16_packed_size(Index K, Index N) {
  return gemm_bf16_detail::pairs(K) * gemm_bf16_detail::packed_width(N);
}
inline Index gemm_bf16_pack_units(Index K, Index N) {
  using namespace gemm_bf16_detail;
  return num_chunks(K, block_k(K)) * num_chunks(N, kNR);
}
inline void gemm_bf16_pack_unit(std::uint32_t* out, GemmOperand<float> B, Index K, Index N, Index u) {
  using namespace gemm_bf16_detail;
  const Index kb = block_k(K), panels = num_chunks(N, kNR), p0 = u / panels * kb, j0 = u % panels * kNR;
  const Index kc = std::min(kb, K - p0);
  pack_b(out + packed_offset(N, p0, kc, j0), B, p0, kc, j0, std::min(kNR, N - j0));
}
inline void gemm_bf16(float* c, Index ldc, GemmOperand<float> A, const PackedBf16& B, Index M) {
  if (M == 0 || B.N == 0 || B.K == 0) return;
  gemm_bf16_detail::run_best(c, ldc, A, GemmOperand<float>{nullptr, 0}, B.data, M, B.N, B.K, 0, B.N);
}

// Only C's columns [j_begin, j_end) (multiples of kGemmBf16ColumnStep, or N): the same values
// as the whole product there, so threads can share the columns of one C.
inline constexpr Index kGemmBf16ColumnStep = gemm_bf16_detail::kNR;
inline void gemm_bf16_columns(float* c, Index ldc, GemmOperand<float> A, const PackedBf16& B, Index M, Index j_begin,
                              Index j_end) {
  gemm_detail::check_columns(j_begin, j_end, B.N, kGemmBf16ColumnStep);
  if (M == 0 || j_end == j_begin || B.K == 0) return;
  gemm_bf16_detail::run_best(c, ldc, A, GemmOperand<float>{nullptr, 0}, B.data, M, B.N, B.K, j_begin, j_end);
}
inline void gemm_bf16_columns(float* c, Index ldc, GemmOperand<float> A, GemmOperand<float> B, Index M, Index N,
                              Index K, Index j_begin, Index j_end) {
  gemm_detail::check_columns(j_begin, j_end, N, kGemmBf16ColumnStep);
  if (M == 0 || j_end == j_begin || K == 0) return;
  gemm_bf16_detail::run_best(c, ldc, A, B, nullptr, M, N, K, j_begin, j_end);
}

}  // namespace mae::kernels

#endif  // MAE_KERNELS_GEMM_BF16_HPP
