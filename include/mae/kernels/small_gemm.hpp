// mae/kernels/small_gemm.hpp — C (M, N) = or += alpha * A (M, K) B (K, N) for the small products
// inside attention: per sample and head, (T, hd) x (hd, T) and (T, T) x (T, hd), T from about
// ten to a few hundred, hd 32 or 64, operands often transposed views of the qkv buffer.
//
// Eigen's general product is built for large matrices: it packs both operands, blocks for the
// caches and (for `=`) zeroes C first; at these sizes that overhead is most of the time. Here:
//   1. B is copied once into panels of one SIMD packet width P (zero padded at the right edge):
//      panel p holds columns [p P, p P + P) as K contiguous rows of P values;
//   2. A is read in place through its strides (a transposed view costs nothing);
//   3. a register tile of up to 8 rows x 2 panels accumulates a(i, k) * b(k, :) over k in order.
// Each C element is the fused multiply-add chain over k = 0..K-1, whatever M, N and the tile
// it falls in, so results are reproducible; tests/test_kernels.cpp compares it with
// reference::small_gemm.
//
// Under bf16 mixed precision (Bf16 = true, float only) both operands are rounded to bf16 (to
// nearest even, bf16.hpp's to_bf16), B as it is packed, A once per call (rounding each
// value as the tile broadcasts it did the same rounding once per pair of panels, and made
// attention's products twice as slow as fp32's). The products of two bf16 values are exact in
// fp32 and are summed in fp32:
//   - where the compiler targets AVX512-BF16, on vdpbf16ps (as the linear layers' bf16 format): B packed as
//     bf16 pairs (one 32-bit word holds steps k and k + 1) in the same panels of P columns, A
//     rounded into pairs; a tile row takes one broadcast of A's pair and one instruction per
//     panel for two steps of k. Per pair the high half (k + 1) is added first, as the
//     instruction does;
//   - elsewhere, in fp32 on the rounded values by the fp32 tile, with both operands' steps of
//     k stored in that same order (k + 1, k, k + 3, k + 2, ...).
// A bf16 product is exact in fp32, so the two paths give the same bits (tests/test_kernels.cpp
// checks both against a scalar emulation), except that vdpbf16ps flushes subnormals to zero.
#ifndef MAE_KERNELS_SMALL_GEMM_HPP
#define MAE_KERNELS_SMALL_GEMM_HPP

#include "arch.hpp"
#include "bf16.hpp"
#include "../core/common.hpp"

#include <algorithm>
#include <type_traits>
#include <vector>

namespace mae::kernels {

// How a product writes C: C = alpha A B (assign) or C += alpha A B (add).
enum class Out { assign, add };

namespace small_gemm_detail {

struct PackBuffer;  // thread_buffer tags
struct RoundedABuffer;
using Word = bf16::Word;

template <class S>
inline constexpr Index kWidth = kPacket<S>;
// Register tile: kTileRows (arch.hpp) rows x 2 panels: 8 x 2 = 16 accumulators with 32 vector
// registers (AVX-512); 6 x 2 = 12 accumulators + 2 B packets + 1 broadcast with 16 (AVX2).

// out = B (K, N), element (k, j) at b[k * b_rs + j * b_cs], as ceil(N / P) panels of (K, P).
// A B that is the transpose of a row-major matrix (b_rs = 1: k^T in q k^T) is copied by 8 x 8
// register transposes rather than one strided value at a time.
template <class S>
inline void pack_panels(S* out, const S* b, Index b_rs, Index b_cs, Index K, Index N) {
  constexpr Index P = kWidth<S>;
  for (Index j0 = 0; j0 < N; j0 += P, out += K * P) {
    const Index nj = std::min(P, N - j0);
    if (b_rs == 1) {
      if (nj < P) std::fill(out, out + K * P, S(0));
      transpose_copy(out, P, b + j0 * b_cs, b_cs, nj, K);
      continue;
    }
    S* o = out;
    if (b_cs == 1 && nj == P) {  // each k's P values contiguous (v, dout, k, q): one packet copy
      for (Index k = 0; k < K; ++k, o += P)
        Eigen::internal::pstoreu(o, Eigen::internal::ploadu<Packet<S>>(b + k * b_rs + j0));
      continue;
    }
    for (Index k = 0; k < K; ++k, o += P) {
      const S* src = b + k * b_rs + j0 * b_cs;
      for (Index j = 0; j < nj; ++j) o[j] = src[j * b_cs];
      for (Index j = nj; j < P; ++j) o[j] = S(0);
    }
  }
}

// Where the portable bf16 path stores step k: k + 1 before k in each pair (the unpaired last
// step in place), so that the tile's chain over the stored order is vdpbf16ps's order.
inline Index hi_first(Index k, Index K) { return (k ^ 1) < K ? k ^ 1 : k; }

// The packed B (K rows of P values per panel) rounded to bf16 in place, its rows in hi_first
// order (zero padding stays zero).
inline void round_panels_bf16(float* bp, Index K, Index N) {
  constexpr Index P = kWidth<float>;
  for (Index p = 0; p < (N + P - 1) / P; ++p, bp += K * P)
    for (Index k = 0; k < K; k += 2) {
      float* r0 = bp + k * P;
      if (k + 1 == K) {
        for (Index j = 0; j < P; ++j) r0[j] = round_bf16(r0[j]);
        continue;
      }
      float* r1 = r0 + P;
      for (Index j = 0; j < P; ++j) {
        const float hi = round_bf16(r1[j]);
        r1[j] = round_bf16(r0[j]);
        r0[j] = hi;
      }
    }
}

// out (M, K) row-major = A (M, K) rounded to bf16, element (i, k) at a[i * a_rs + k * a_cs],
// its steps of k in hi_first order
inline void round_a_bf16(float* out, const float* a, Index a_rs, Index a_cs, Index M, Index K) {
  if (a_cs == 1) {
    for (Index i = 0; i < M; ++i)
      for (Index k = 0; k < K; ++k) out[i * K + hi_first(k, K)] = round_bf16(a[i * a_rs + k]);
  } else {
    for (Index k = 0; k < K; ++k)  // a transposed view (a_rs = 1): read along rows of memory
      for (Index i = 0; i < M; ++i) out[i * K + hi_first(k, K)] = round_bf16(a[i * a_rs + k * a_cs]);
  }
}

template <class S, int MR, int NP>
void store_tile(const Packet<S> (&acc)[MR][NP], S* c, Index ldc, Index n_valid, S alpha, Out mode);

// C[0..MR) x [0..n_valid) (n_valid <= NP P) = or += alpha * A[0..MR) x B-panels[0..NP)
template <class S, int MR, int NP>
inline void tile(S* c, Index ldc, const S* a, Index a_rs, Index a_cs, const S* bp, Index K, Index n_valid, S alpha,
                 Out mode) {
  using Pk = Packet<S>;
  constexpr Index P = kWidth<S>;
  namespace ei = Eigen::internal;
  Pk acc[MR][NP];
  for (int r = 0; r < MR; ++r)
    for (int p = 0; p < NP; ++p) acc[r][p] = ei::pset1<Pk>(S(0));
  for (Index k = 0; k < K; ++k) {
    Pk b[NP];
    for (int p = 0; p < NP; ++p) b[p] = ei::ploadu<Pk>(bp + (p * K + k) * P);
    for (int r = 0; r < MR; ++r) {
      const Pk av = ei::pset1<Pk>(a[r * a_rs + k * a_cs]);
      for (int p = 0; p < NP; ++p) acc[r][p] = ei::pmadd(av, b[p], acc[r][p]);
    }
  }
  store_tile<S, MR, NP>(acc, c, ldc, n_valid, alpha, mode);
}

// The tile's accumulators out: C = or += alpha acc, only C's first n_valid columns.
template <class S, int MR, int NP>
inline void store_tile(const Packet<S> (&acc)[MR][NP], S* c, Index ldc, Index n_valid, S alpha, Out mode) {
  using Pk = Packet<S>;
  constexpr Index P = kWidth<S>;
  const Pk al = ei::pset1<Pk>(alpha);
  for (int r = 0; r < MR; ++r)
    for (int p = 0; p < NP; ++p) {
      S* cp = c + r * ldc + p * P;
      const Index n = std::min(P, n_valid - p * P);
      Pk v = ei::pmul(al, acc[r][p]);
      if (n == P) {
        if (mode == Out::add) v = ei::padd(v, ei::ploadu<Pk>(cp));
        ei::pstoreu(cp, v);
      } else {
        S tmp[P];
        ei::pstoreu(tmp, v);
        for (Index j = 0; j < n; ++j) cp[j] = mode == Out::add ? cp[j] + tmp[j] : tmp[j];
      }
    }
}

// f(std::integral_constant<int, m>{}) for a block of m <= kTileRows rows: the tiles' row count
// as a compile-time constant.
template <class F>
inline void with_rows(Index m, F&& f) {
  static_assert(kTileRows <= 8, "one case per tile height");
  switch (m) {
    case 8:
      return f(std::integral_constant<int, 8>{});
    case 7:
      return f(std::integral_constant<int, 7>{});
    case 6:
      return f(std::integral_constant<int, 6>{});
    case 5:
      return f(std::integral_constant<int, 5>{});
    case 4:
      return f(std::integral_constant<int, 4>{});
    case 3:
      return f(std::integral_constant<int, 3>{});
    case 2:
      return f(std::integral_constant<int, 2>{});
    default:
      return f(std::integral_constant<int, 1>{});
  }
}

#ifdef __AVX512BF16__
// bf16 pairs on vdpbf16ps: B packed and A rounded as the linear layers' operands are
// (bf16.hpp's pack_panels and round_words), with panels of one packet.
using bf16::WordStrides;

// C[0..MR) x [0..n_valid) = or += alpha * A's pairs [0..MR) x the word panels [0..NP), np pairs
template <int MR, int NP>
inline void tile_words(float* c, Index ldc, const Word* a, WordStrides as, const Word* bp, Index np, Index n_valid,
                       float alpha, Out mode) {
  constexpr Index P = kWidth<float>;
  static_assert(P == 16, "AVX512-BF16 works on 16 lanes: Eigen's float packet must be AVX-512's");
  __m512 acc[MR][NP];
  for (int r = 0; r < MR; ++r)
    for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_setzero_ps();
  for (Index q = 0; q < np; ++q) {
    __m512bh b[NP];
    for (int p = 0; p < NP; ++p) b[p] = (__m512bh)_mm512_loadu_si512(bp + (p * np + q) * P);
    for (int r = 0; r < MR; ++r) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[r * as.rs + q * as.qs]));
      for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_dpbf16_ps(acc[r][p], av, b[p]);
    }
  }
  store_tile<float, MR, NP>(acc, c, ldc, n_valid, alpha, mode);
}
#endif

template <class S, int MR>
inline void tile_rows(int panels, S* c, Index ldc, const S* a, Index a_rs, Index a_cs, const S* bp, Index K,
                      Index n_valid, S alpha, Out mode) {
  if (panels == 2)
    tile<S, MR, 2>(c, ldc, a, a_rs, a_cs, bp, K, n_valid, alpha, mode);
  else
    tile<S, MR, 1>(c, ldc, a, a_rs, a_cs, bp, K, n_valid, alpha, mode);
}

}  // namespace small_gemm_detail

// B (K, N), element (k, j) at b[k * b_rs + j * b_cs], packed for small_gemm_packed: a buffer
// of small_gemm_packed_size(K, N) elements of SmallPacked (S, or bf16 pairs where the bf16
// products run on vdpbf16ps). A B used by many products (attention's k and v, for every
// block of query rows) is packed once.
template <class S, bool Bf16 = false>
using SmallPacked = std::conditional_t<Bf16 && kNativeBf16, std::uint32_t, S>;
template <class S>
inline Index small_gemm_packed_size(Index K, Index N) {  // enough for either kind
  constexpr Index P = small_gemm_detail::kWidth<S>;
  return (N + P - 1) / P * K * P;
}
// Bf16: the packed values rounded to bf16, for small_gemm_packed<S, true>.
template <class S, bool Bf16 = false>
MAE_ALWAYS_INLINE void small_gemm_pack(SmallPacked<S, Bf16>* out, const S* b, Index b_rs, Index b_cs, Index K,
                                       Index N) {
  static_assert(!Bf16 || std::is_same_v<S, float>, "mae::kernels::small_gemm: bf16 operands need float");
  if constexpr (Bf16 && kNativeBf16) {
#ifdef __AVX512BF16__
    bf16::pack_panels<small_gemm_detail::kWidth<float>>(out, b, b_rs, b_cs, K, N);
#endif
  } else {
    small_gemm_detail::pack_panels(out, b, b_rs, b_cs, K, N);
    if constexpr (Bf16) small_gemm_detail::round_panels_bf16(out, K, N);
  }
}

// C (M, N; row stride ldc) = alpha A B (Out::assign) or += alpha A B (Out::add), where
// A (M, K) has element (i, k) at a[i * a_rs + k * a_cs] and B (K, N) was packed by
// small_gemm_pack (with the same Bf16: then A is rounded to bf16 too). Single-threaded (call
// it inside a parallel loop).
template <class S, bool Bf16 = false>
inline void small_gemm_packed(S* c, Index ldc, const S* a, Index a_rs, Index a_cs, const SmallPacked<S, Bf16>* bp,
                              Index M, Index N, Index K, S alpha, Out mode) {
  namespace d = small_gemm_detail;
  constexpr Index P = d::kWidth<S>;
  const Index panels = (N + P - 1) / P;
  if constexpr (Bf16) {
    static_assert(std::is_same_v<S, float>, "mae::kernels::small_gemm: bf16 operands need float");
#ifdef __AVX512BF16__
    const Index np = bf16::pairs(K);
    d::Word* const aw = thread_buffer<d::RoundedABuffer, d::Word>(M * np);
    const d::WordStrides as = bf16::round_words(aw, a, a_rs, a_cs, M, K);
    for (Index p0 = 0; p0 < panels; p0 += 2) {
      const bool two = panels - p0 >= 2;
      const d::Word* panel = bp + p0 * np * P;
      for (Index i = 0; i < M; i += kTileRows)
        d::with_rows(std::min<Index>(kTileRows, M - i), [&](auto rows) {
          constexpr int MR = decltype(rows)::value;
          float* ci = c + i * ldc + p0 * P;
          const d::Word* ai = aw + i * as.rs;
          if (two)
            d::tile_words<MR, 2>(ci, ldc, ai, as, panel, np, N - p0 * P, alpha, mode);
          else
            d::tile_words<MR, 1>(ci, ldc, ai, as, panel, np, N - p0 * P, alpha, mode);
        });
    }
    return;
#else
    float* const ar = thread_buffer<d::RoundedABuffer, float>(M * K);
    d::round_a_bf16(ar, a, a_rs, a_cs, M, K);
    return small_gemm_packed<S, false>(c, ldc, ar, K, 1, bp, M, N, K, alpha, mode);
#endif
  } else {
    for (Index p0 = 0; p0 < panels; p0 += 2) {
      const int np = static_cast<int>(std::min<Index>(2, panels - p0));
      const S* panel = bp + p0 * K * P;
      const Index n_valid = N - p0 * P;
      for (Index i = 0; i < M; i += kTileRows)
        d::with_rows(std::min<Index>(kTileRows, M - i), [&](auto rows) {
          d::tile_rows<S, decltype(rows)::value>(np, c + i * ldc + p0 * P, ldc, a + i * a_rs, a_rs, a_cs, panel, K,
                                                 n_valid, alpha, mode);
        });
    }
  }
}

// The same with B (K, N) as in small_gemm_pack, packed here into a per-thread buffer that only
// grows (steady-state calls allocate nothing).
template <class S, bool Bf16 = false>
MAE_ALWAYS_INLINE void small_gemm(S* c, Index ldc, const S* a, Index a_rs, Index a_cs, const S* b, Index b_rs,
                                  Index b_cs, Index M, Index N, Index K, S alpha, Out mode) {
  auto* bp = thread_buffer<small_gemm_detail::PackBuffer, SmallPacked<S, Bf16>>(small_gemm_packed_size<S>(K, N));
  small_gemm_pack<S, Bf16>(bp, b, b_rs, b_cs, K, N);
  small_gemm_packed<S, Bf16>(c, ldc, a, a_rs, a_cs, bp, M, N, K, alpha, mode);
}

}  // namespace mae::kernels

#endif  // MAE_KERNELS_SMALL_GEMM_HPP
