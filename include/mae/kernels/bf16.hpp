// mae/kernels/bf16.hpp — bf16 values and the packed pairs every bf16 product reads.
//
// Rounding: fp32 -> bf16 to nearest even, as PyTorch's c10::BFloat16 (and so its CPU autocast).
// Packing: both operands of a bf16 product are stored as *pairs*: one 32-bit word holds two
// consecutive steps of k,
//   word = bf16(x[k]) | bf16(x[k + 1]) << 16      (k even; a zero pads an odd K),
// the operand layout of AVX512-BF16's vdpbf16ps (acc[j] += a.hi b[j].hi, then += a.lo b[j].lo,
// per 32-bit lane j) and of AMX's tdpbf16ps. The linear layers' products (format_bf16.hpp,
// format_amx.hpp) and attention's (small_gemm.hpp) pack and round with these functions.
// Rounding many values gives to_bf16's bits on every CPU: vectorized with vcvtne2ps2bf16 where
// AVX512-BF16 is compiled, scalar elsewhere.
#ifndef MAE_KERNELS_BF16_HPP
#define MAE_KERNELS_BF16_HPP

#include "arch.hpp"
#include "../core/common.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

#ifdef __AVX512BF16__
#include <immintrin.h>
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

// Where vdpbf16ps is compiled (AVX512-BF16): true; false where bf16 products run on the
// portable tiles (fp32 arithmetic on the same words).
#ifdef __AVX512BF16__
inline constexpr bool kNativeBf16 = true;
#else
inline constexpr bool kNativeBf16 = false;
#endif

namespace bf16 {

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
// pairs (words) holding kc steps of k
inline Index pairs(Index kc) { return num_chunks(kc, 2); }

// Rounding many values into words, the loops of packing. With AVX512-BF16, 32 values per
// vcvtne2ps2bf16 (round to nearest even, as to_bf16); the instruction flushes subnormal inputs
// to zero and keeps a NaN's payload, so a group of values holding either takes the scalar
// to_bf16: the words are to_bf16's, bit for bit, on every CPU. (Compiled where the compiler
// targets AVX512-BF16 with AVX512-BW and -DQ, as every CPU with AVX512-BF16 has.)
//   pair_along: w[i] = pair(x[2 i], x[2 i + 1]), i < n (pairs of consecutive values);
//   pair_rows:  w[i] = pair(lo[i], hi[i]), i < n (pairs across two rows).
#if defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__AVX512DQ__)
#define MAE_BF16_VECTOR_ROUNDING 1
inline __mmask16 special(__m512 x) { return _mm512_fpclass_ps_mask(x, 0x01 | 0x80 | 0x20); }  // NaN, subnormal
#endif
inline void pair_along(Word* w, const float* x, Index n) {
  Index i = 0;
#ifdef MAE_BF16_VECTOR_ROUNDING
  for (; i + 16 <= n; i += 16) {
    const __m512 a = _mm512_loadu_ps(x + 2 * i), b = _mm512_loadu_ps(x + 2 * i + 16);
    if (special(a) | special(b)) {
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
    if (special(a) | special(b)) {
      for (Index j = i; j < i + 16; ++j) w[j] = pair(lo[j], hi[j]);
      continue;
    }
    _mm512_storeu_si512(w + i, _mm512_permutexvar_epi16(interleave, (__m512i)_mm512_cvtne2ps_pbh(b, a)));
  }
#endif
  for (; i < n; ++i) w[i] = pair(lo[i], hi[i]);
}

// Words laid out with a stride per row and per pair: pair (r, q) at p[r rs + q qs].
struct WordStrides {
  Index rs, qs;
};

// A (M, K), element (i, k) at a[i rs + k cs], rounded into pairs, read along A's rows of memory:
// pair (i, q) at out[i pairs(K) + q] (returned as {pairs(K), 1}), or where A's steps of k are
// its rows of memory (a transposed view, rs == 1) at out[q M + i] (returned as {1, M}).
// The A operands of the linear layers' and of attention's bf16 products.
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
// linear layers (NR = a format's panel width) and of attention's products (NR = one packet).
// Chunk: how many pairs of one column are rounded at a time when B's columns are contiguous.
template <Index NR>
MAE_ALWAYS_INLINE void pack_panels(Word* out, const float* b, Index rs, Index cs, Index kc, Index nc) {
  constexpr Index P = kPacket<float>;
  const Index np = pairs(kc), whole = kc / 2;
  for (Index c0 = 0; c0 < nc; c0 += NR, out += NR * np) {
    const Index ncols = std::min(NR, nc - c0), w = num_chunks(ncols, P) * P;
    if (ncols < w) std::fill(out, out + w * np, Word(0));
    if (rs == 1) {  // column j's steps of k contiguous: pairs along 8 columns, transposed into the panel
      constexpr Index kChunk = 128, kCols = 8;
      alignas(64) Word cols[kCols * kChunk];  // (column, pair)
      for (Index j0 = 0; j0 < ncols; j0 += kCols) {
        const Index nj = std::min(kCols, ncols - j0);
        for (Index q0 = 0; q0 < whole; q0 += kChunk) {
          const Index n = std::min(kChunk, whole - q0);
          for (Index j = 0; j < nj; ++j) pair_along(cols + j * kChunk, b + (c0 + j0 + j) * cs + 2 * q0, n);
          transpose_copy(out + q0 * w + j0, w, cols, kChunk, nj, n);  // out[(q0 + q) w + j0 + j] = cols[j][q]
        }
        if (kc % 2)
          for (Index j = j0; j < j0 + nj; ++j) out[whole * w + j] = pair(b[(c0 + j) * cs + kc - 1], 0.0f);
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

}  // namespace bf16
}  // namespace mae::kernels

#endif  // MAE_KERNELS_BF16_HPP
