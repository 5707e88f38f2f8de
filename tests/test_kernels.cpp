// The tuned kernels (include/mae/kernels/) against their plain references (reference.hpp),
// at every tile edge, orientation and stride; and the properties the layers rely on: the
// same bits for any split of the work.
#include "test_util.hpp"

#include <mae/kernels/gemm.hpp>
#include <mae/kernels/reference.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <limits>

using mae::Index;
using mae_test::random_floats;
using mae_test::random_vector;
namespace K = mae::kernels;
using F32 = K::formats::Scalar<float>;
using Bf16 = K::formats::Bf16;

// The error bound of an fp32 sum of products, per element of C: 1e-6 of sum over k of |a b|
// (the same product on absolute values) and of |C's initial value|.
std::vector<float> float_sum_bound(const std::vector<float>& a, const std::vector<float>& b, K::GemmOperand<float> A,
                                   K::GemmOperand<float> B, const std::vector<float>& c_init, Index M, Index N, Index K,
                                   Index ldc) {
  std::vector<float> abs_a(a.size()), abs_b(b.size()), bound(M * ldc, 0);
  std::transform(a.begin(), a.end(), abs_a.begin(), [](float v) { return std::abs(v); });
  std::transform(b.begin(), b.end(), abs_b.begin(), [](float v) { return std::abs(v); });
  K::reference::gemm(bound.data(), ldc, K::GemmOperand<float>{abs_a.data(), A.ld, A.transposed},
                     K::GemmOperand<float>{abs_b.data(), B.ld, B.transposed}, M, N, K, 1e-6f);
  for (Index i = 0; i < M * ldc; ++i) bound[i] += 1e-6f * std::abs(c_init[i]);
  return bound;
}

TEST_CASE("sum16 (the vectorized reduction) equals the plain sum, for every length around its blocks") {
  for (Index n : {0, 1, 7, 15, 16, 17, 31, 33, 192, 1000}) {
    const std::vector<float> x = random_floats(n, 40 + n);
    double exact = 0, abs_sum = 0;
    for (float v : x) exact += v, abs_sum += std::abs(v);
    const float s = K::sum16<float>(n, [&](Index i) { return x[static_cast<std::size_t>(i)]; });
    INFO("n = " << n);
    CHECK(std::abs(s - exact) <= 4e-7 * abs_sum * std::max<double>(1, std::log2(std::max<Index>(n, 1))));
    // the order is fixed by n alone: a copy at another address sums to the same bits
    std::vector<float> shifted(x.size() + 3);
    std::copy(x.begin(), x.end(), shifted.begin() + 3);
    CHECK(K::sum16<float>(n, [&](Index i) { return shifted[static_cast<std::size_t>(i) + 3]; }) == s);
  }
}

TEST_CASE(
    "gemm (the linear layers' products) equals the reference triple loop, in every orientation and at every edge") {
  // sizes around the tiles (8 rows x 3 packets with AVX-512, 6 x 2 with AVX2), 256-step k
  // blocks, 256-row and 10-panel blocks
  for (const auto& [M, N, K] : std::vector<std::array<Index, 3>>{{1, 1, 1},
                                                                 {8, 48, 16},
                                                                 {9, 49, 257},
                                                                 {17, 130, 9},
                                                                 {263, 500, 520},
                                                                 {300, 33, 40},
                                                                 {5, 481, 3},
                                                                 {64, 16, 600},
                                                                 {7, 17, 300},
                                                                 {12, 161, 31}}) {
    for (int orientation = 0; orientation < 4; ++orientation) {
      const bool at = orientation & 1, bt = orientation & 2;
      const std::vector<float> a = random_floats(M * K, 50 + M), b = random_floats(K * N, 60 + N);
      const K::GemmOperand<float> A{a.data(), at ? M : K, at},
          B{b.data(), bt ? K : N, bt};  // A stored (M, K) or (K, M)
      const Index ldc = N + 3;
      const std::vector<float> c_init = random_floats(M * ldc, 70);
      std::vector<float> c0 = c_init, c1 = c_init, c2 = c_init;
      K::reference::gemm(c0.data(), ldc, A, B, M, N, K, 0.5f);
      const std::vector<float> bound = float_sum_bound(a, b, A, B, c_init, M, N, K, ldc);
      K::gemm<F32>(c1.data(), ldc, A, B, M, N, K, 0.5f);
      // the same product in two chunks of rows split off the tile grid: the same bits
      const Index split = M / 2 + 1 < M ? M / 2 + 1 : M;
      K::gemm<F32>(c2.data(), ldc, A, B, split, N, K, 0.5f);
      const K::GemmOperand<float> A2{at ? a.data() + split : a.data() + split * K, A.ld, at};
      K::gemm<F32>(c2.data() + split * ldc, ldc, A2, B, M - split, N, K, 0.5f);
      // and with B packed beforehand, piece by piece: the same bits
      std::vector<float> c3 = c_init;
      std::vector<float, Eigen::aligned_allocator<float>> packed(
          static_cast<std::size_t>(K::gemm_packed_size<F32>(K, N)), std::numeric_limits<float>::quiet_NaN());
      for (Index u = 0; u < K::gemm_pack_units<F32>(K, N); ++u) K::gemm_pack_unit<F32>(packed.data(), B, K, N, u);
      K::gemm<F32>(c3.data(), ldc, A, K::PackedB<F32>{packed.data(), K, N}, M, 0.5f);
      // and column range by column range (gemm_columns), B packed before or packed per range
      const Index step = K::kGemmColumnStep<F32>, mid = std::min(N, (N / 2 + step - 1) / step * step);
      std::vector<float> c4 = c_init, c5 = c_init;
      K::gemm_columns<F32>(c4.data(), ldc, A, K::PackedB<F32>{packed.data(), K, N}, M, 0, mid, 0.5f);
      K::gemm_columns<F32>(c4.data(), ldc, A, K::PackedB<F32>{packed.data(), K, N}, M, mid, N, 0.5f);
      K::gemm_columns<F32>(c5.data(), ldc, A, B, M, N, K, mid, N, 0.5f);
      K::gemm_columns<F32>(c5.data(), ldc, A, B, M, N, K, 0, mid, 0.5f);
      INFO("M " << M << " N " << N << " K " << K << " A transposed " << at << " B transposed " << bt);
      CHECK(c1 == c2);
      CHECK(c1 == c3);
      CHECK(c1 == c4);
      CHECK(c1 == c5);
      for (Index i = 0; i < M; ++i)
        for (Index j = 0; j < ldc; ++j) {
          const Index idx = i * ldc + j;
          if (j >= N)  // the padding between rows is never written
            CHECK(c1[idx] == c_init[idx]);
          else
            CHECK(std::abs(c1[idx] - c0[idx]) <= bound[idx]);
        }
    }
  }
}

TEST_CASE("bf16 rounding is PyTorch's: to nearest, ties to even, NaN to 0x7fc0, infinities and signs kept") {
  const auto bits = [](std::uint32_t u) {
    float x;
    std::memcpy(&x, &u, 4);
    return K::to_bf16(x);
  };
  CHECK(bits(0x3f800000u) == 0x3f80u);  // 1
  CHECK(bits(0x3f808000u) == 0x3f80u);  // 1 + 2^-8: a tie, to the even 1
  CHECK(bits(0x3f818000u) == 0x3f82u);  // a tie, to the even 0x3f82
  CHECK(bits(0x3f808001u) == 0x3f81u);  // just above the tie: up
  CHECK(bits(0x3f807fffu) == 0x3f80u);  // just below: down
  CHECK(bits(0xbf808001u) == 0xbf81u);  // the sign kept
  CHECK(bits(0x7f7fffffu) == 0x7f80u);  // the largest float rounds to infinity
  CHECK(bits(0xff800000u) == 0xff80u);  // -inf
  CHECK(bits(0x7fc00001u) == 0x7fc0u);  // NaN
  CHECK(bits(0xffa00000u) == 0x7fc0u);  // a negative signalling NaN
  CHECK(bits(0x00000001u) == 0x0000u);  // the smallest subnormal: to zero (ties to even is up only past half)
  CHECK(K::from_bf16(0x4049u) == 3.140625f);
}

TEST_CASE("packing rounds many values at once as to_bf16 does one: ties, NaN, subnormals, infinities, tails") {
  // the vectorized loops (vcvtne2ps2bf16 with AVX512-BF16) must give to_bf16's words
  std::vector<std::uint32_t> special = {0x3f808000u, 0x3f818000u, 0x3f808001u, 0x3f807fffu, 0xbf808001u,
                                        0x7f7fffffu, 0xff800000u, 0x7fc00001u, 0xffa00000u, 0x7f800001u,
                                        0x00000001u, 0x007fffffu, 0x807fff80u, 0x007f8000u, 0x80000000u};
  const auto as_float = [](std::uint32_t u) {
    float x;
    std::memcpy(&x, &u, 4);
    return x;
  };
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (const Index n : {0, 1, 15, 16, 17, 31, 32, 48, 70}) {
    for (const bool with_special : {false, true}) {
      std::vector<float> x(static_cast<std::size_t>(2 * n)), y(static_cast<std::size_t>(n));
      for (auto& v : x) v = normal(rng);
      for (auto& v : y) v = normal(rng);
      if (with_special)
        for (std::size_t i = 0; i < x.size(); i += 5) x[i] = as_float(special[i / 5 % special.size()]);
      if (with_special)
        for (std::size_t i = 0; i < y.size(); i += 3) y[i] = as_float(special[(i / 3 + 4) % special.size()]);
      std::vector<std::uint32_t> along(static_cast<std::size_t>(n)), rows(static_cast<std::size_t>(n));
      K::bf16::pair_along(along.data(), x.data(), n);
      K::bf16::pair_rows(rows.data(), x.data(), y.data(), n);
      for (Index i = 0; i < n; ++i) {
        const auto want_along = static_cast<std::uint32_t>(K::to_bf16(x[2 * i])) |
                                static_cast<std::uint32_t>(K::to_bf16(x[2 * i + 1])) << 16;
        const auto want_rows =
            static_cast<std::uint32_t>(K::to_bf16(x[i])) | static_cast<std::uint32_t>(K::to_bf16(y[i])) << 16;
        CAPTURE(n);
        CAPTURE(i);
        CHECK(along[i] == want_along);
        CHECK(rows[i] == want_rows);
      }
    }
  }
}

TEST_CASE("gemm_bf16 equals the reference (operands rounded to bf16, products summed in double), at every edge") {
  // sizes around the tiles, the 512-step (256-pair) k blocks and an odd K's half pair
  for (const auto& [M, N, K] : std::vector<std::array<Index, 3>>{{1, 1, 1},
                                                                 {8, 48, 16},
                                                                 {9, 49, 3},
                                                                 {17, 130, 513},
                                                                 {263, 500, 1030},
                                                                 {5, 481, 7},
                                                                 {64, 16, 600},
                                                                 {12, 161, 31}}) {
    for (int orientation = 0; orientation < 4; ++orientation) {
      const bool at = orientation & 1, bt = orientation & 2;
      const std::vector<float> a = random_floats(M * K, 80 + M), b = random_floats(K * N, 90 + N);
      const K::GemmOperand<float> A{a.data(), at ? M : K, at}, B{b.data(), bt ? K : N, bt};
      const Index ldc = N + 3;
      const std::vector<float> c_init = random_floats(M * ldc, 70);
      std::vector<float> want = c_init, fp32 = c_init, c1 = c_init;
      K::reference::gemm_bf16(want.data(), ldc, A, B, M, N, K);
      K::reference::gemm(fp32.data(), ldc, A, B, M, N, K);
      const std::vector<float> bound = float_sum_bound(a, b, A, B, c_init, M, N, K, ldc);
      K::gemm<Bf16>(c1.data(), ldc, A, B, M, N, K);
      // B packed beforehand (over a NaN-filled buffer: every word used is written), and
      // column range by column range: the same bits
      std::vector<std::uint32_t, Eigen::aligned_allocator<std::uint32_t>> packed(
          static_cast<std::size_t>(K::gemm_packed_size<Bf16>(K, N)), 0x7fc07fc0u);
      for (Index u = 0; u < K::gemm_pack_units<Bf16>(K, N); ++u) K::gemm_pack_unit<Bf16>(packed.data(), B, K, N, u);
      const K::PackedB<Bf16> P{packed.data(), K, N};
      std::vector<float> c2 = c_init, c3 = c_init, c4 = c_init;
      K::gemm<Bf16>(c2.data(), ldc, A, P, M);
      const Index step = K::kGemmColumnStep<Bf16>, mid = std::min(N, (N / 2 + step - 1) / step * step);
      K::gemm_columns<Bf16>(c3.data(), ldc, A, P, M, mid, N);
      K::gemm_columns<Bf16>(c3.data(), ldc, A, P, M, 0, mid);
      K::gemm_columns<Bf16>(c4.data(), ldc, A, B, M, N, K, 0, mid);
      K::gemm_columns<Bf16>(c4.data(), ldc, A, B, M, N, K, mid, N);
      INFO("M " << M << " N " << N << " K " << K << " A transposed " << at << " B transposed " << bt);
      CHECK(c1 == c2);
      CHECK(c1 == c3);
      CHECK(c1 == c4);
#ifdef __AVX512BF16__
      {  // the portable tile gives vdpbf16ps's bits
        std::vector<float> c5 = c_init, c6 = c_init;
        K::gemm<K::formats::Bf16Portable>(c5.data(), ldc, A, B, M, N, K);
        K::gemm<K::formats::Bf16Dot>(c6.data(), ldc, A, B, M, N, K);
        CHECK(c5 == c6);
        if (!K::amx_granted()) CHECK(c1 == c6);  // AMX tiles sum inside an instruction in their own order
      }
#endif
      Index off_fp32 = 0;  // elements the rounding of the operands moved past the fp32 bound
      for (Index i = 0; i < M; ++i)
        for (Index j = 0; j < ldc; ++j) {
          const Index idx = i * ldc + j;
          if (j >= N) {
            CHECK(c1[idx] == c_init[idx]);
            continue;
          }
          CHECK(std::abs(c1[idx] - want[idx]) <= bound[idx]);
          off_fp32 += std::abs(c1[idx] - fp32[idx]) > bound[idx];
        }
      if (K > 8) CHECK(off_fp32 > M * N / 2);  // the operands really were rounded
    }
  }
}

// B (K, N) packed by rows [0, K) cut at `cuts` (gemm_pack_rows) equals its packing by units
// (gemm_pack_unit), word for word, over buffers filled with different garbage.
template <class Fmt>
static void check_pack_rows(const std::vector<typename Fmt::Value>& b, bool transposed, Index K, Index N,
                            const std::vector<Index>& cuts) {
  using Word = typename Fmt::Word;
  const K::GemmOperand<typename Fmt::Value> B{b.data(), transposed ? K : N, transposed};
  const auto n = static_cast<std::size_t>(K::gemm_packed_size<Fmt>(K, N));
  std::vector<Word, Eigen::aligned_allocator<Word>> units(n, Word(7)), by_rows(n, Word(9));
  for (Index u = 0; u < K::gemm_pack_units<Fmt>(K, N); ++u) K::gemm_pack_unit<Fmt>(units.data(), B, K, N, u);
  Index k0 = 0;
  for (const Index k1 : cuts) K::gemm_pack_rows<Fmt>(by_rows.data(), B, K, N, k0, k1), k0 = k1;
  INFO("K " << K << " N " << N << " transposed " << transposed << " pieces " << cuts.size());
  CHECK(std::memcmp(units.data(), by_rows.data(), n * sizeof(Word)) == 0);
}

TEST_CASE("gemm_pack_rows: B packed by pieces of rows gives gemm_pack_unit's words, in fp32 and bf16") {
  // K spanning several k blocks (512 steps in bf16, KC in fp32) with an odd last row; N with a
  // partial panel; cuts inside and on the blocks' edges
  for (const auto& [K, N] : std::vector<std::array<Index, 2>>{{1, 5}, {7, 48}, {1030, 130}, {2081, 97}}) {
    for (const bool transposed : {false, true}) {
      const std::vector<float> b = random_floats(K * N, 40 + K);
      std::vector<std::vector<Index>> splits{{K}};
      for (const Index step : {Index(2), Index(256), Index(600)}) {
        std::vector<Index> cuts;
        for (Index k = step; k < K; k += step) cuts.push_back(k);
        cuts.push_back(K);
        splits.push_back(cuts);
      }
      for (const auto& cuts : splits) {
        check_pack_rows<F32>(b, transposed, K, N, cuts);
        check_pack_rows<Bf16>(b, transposed, K, N, cuts);
      }
    }
  }
  const std::vector<float> b(8 * 8, 1.f);
  std::vector<std::uint32_t, Eigen::aligned_allocator<std::uint32_t>> out(
      static_cast<std::size_t>(K::gemm_packed_size<Bf16>(8, 8)));
  CHECK_THROWS_WITH_AS(K::gemm_pack_rows<Bf16>(out.data(), {b.data(), 8}, 8, 8, 1, 8),
                       doctest::Contains("pairs of rows"),
                       mae::Error);  // a bf16 pair would straddle two calls
  CHECK_THROWS_AS(K::gemm_pack_rows<Bf16>(out.data(), {b.data(), 8}, 8, 8, 0, 3), mae::Error);
  CHECK_THROWS_AS(K::gemm_pack_rows<Bf16>(out.data(), {b.data(), 8}, 8, 8, 0, 10), mae::Error);
}

TEST_CASE("gemm_columns refuses a column range that does not start and end on B's panels") {
  const Index step = K::kGemmColumnStep<F32>, M = 3, N = step + 16, K = 5;  // one panel and a partial one
  const std::vector<float> a(M * K, 1.f), b(K * N, 1.f);
  std::vector<float> c(M * N, 0.f);
  const K::GemmOperand<float> A{a.data(), K}, B{b.data(), N};
  CHECK_THROWS_WITH_AS(K::gemm_columns<F32>(c.data(), N, A, B, M, N, K, 1, N), doctest::Contains("panels of"), mae::Error);
  CHECK_THROWS_AS(K::gemm_columns<F32>(c.data(), N, A, B, M, N, K, 0, step + 1), mae::Error);
  CHECK_THROWS_AS(K::gemm_columns<F32>(c.data(), N, A, B, M, N, K, 0, N + step), mae::Error);
  CHECK_THROWS_AS(K::gemm_columns<F32>(c.data(), N, A, B, M, N, K, step + 1, N), mae::Error);
  CHECK_NOTHROW(K::gemm_columns<F32>(c.data(), N, A, B, M, N, K, N, N));  // empty, at the end
  CHECK(c == std::vector<float>(M * N, 0.f));
  CHECK_NOTHROW(K::gemm_columns<F32>(c.data(), N, A, B, M, N, K, step, N));
  CHECK(c[0] == 0.f);                       // columns before the range untouched
  CHECK(c[step] == static_cast<float>(K));  // and the range computed
}

TEST_CASE("the bf16 formats add A B to C: an alpha other than 1 is refused, not ignored") {
  const Index M = 3, N = 20, K = 5;
  const std::vector<float> a(M * K, 1.f), b(K * N, 1.f);
  std::vector<float> c(M * N, 0.f);
  const K::GemmOperand<float> A{a.data(), K}, B{b.data(), N};
  CHECK_THROWS_WITH_AS(K::gemm<Bf16>(c.data(), N, A, B, M, N, K, 0.5f), doctest::Contains("alpha must be 1"),
                       mae::Error);
  CHECK_THROWS_AS(K::gemm<K::formats::Bf16Portable>(c.data(), N, A, B, M, N, K, 2.f), mae::Error);
  CHECK(c == std::vector<float>(M * N, 0.f));  // nothing written
  K::gemm<Bf16>(c.data(), N, A, B, M, N, K);
  CHECK(c == std::vector<float>(M * N, static_cast<float>(K)));
}

// The strides (rows, columns) of an (R, C) operand of small_gemm stored in a buffer of 4 R C
// values: layout 0 by rows, 1 transposed (by columns), 2 neither contiguous (every other
// value of every other row: the packing's and rounding's generic paths).
static std::array<Index, 2> strides(int layout, Index R, Index C) {
  if (layout == 0) return {C, 1};
  if (layout == 1) return {1, R};
  return {4 * C, 2};
}

TEST_CASE("small_gemm (attention's products) equals the reference triple loop, for every tile edge and stride") {
  // sizes around the tiles (8 or 6 rows) and the 16- or 8-wide panels; A and B read through
  // transposed strides too
  for (const auto& [M, N, K] : std::vector<std::array<Index, 3>>{
           {1, 1, 1}, {13, 13, 64}, {17, 33, 5}, {65, 32, 65}, {9, 47, 20}, {7, 9, 3}, {12, 24, 17}}) {
    for (int layout = 0; layout < 3; ++layout) {
      const std::vector<float> a = random_floats(4 * M * K, 50 + M), b = random_floats(4 * K * N, 60 + N);
      const auto [a_rs, a_cs] = strides(layout, M, K);
      const auto [b_rs, b_cs] = strides(layout, K, N);
      const Index ldc = N + 3;
      const std::vector<float> c_init = random_floats(M * ldc, 70);
      std::vector<float> c0 = c_init, c1 = c_init, c2 = c_init;
      K::reference::small_gemm(c0.data(), ldc, a.data(), a_rs, a_cs, b.data(), b_rs, b_cs, M, N, K, 0.5f, true);
      K::small_gemm(c1.data(), ldc, a.data(), a_rs, a_cs, b.data(), b_rs, b_cs, M, N, K, 0.5f, K::Out::add);
      K::small_gemm(c2.data(), ldc, a.data(), a_rs, a_cs, b.data(), b_rs, b_cs, M, N, K, 0.5f, K::Out::assign);
      INFO("M " << M << " N " << N << " K " << K << " layout " << layout);
      for (Index i = 0; i < M; ++i)
        for (Index j = 0; j < ldc; ++j) {
          const Index at = i * ldc + j;
          if (j >= N) {  // the padding between rows is never written
            CHECK(c1[at] == c0[at]);
            CHECK(c2[at] == c0[at]);
            continue;
          }
          const float prod = c0[at] - c_init[at];
          CHECK(std::abs(c1[at] - c0[at]) <= 1e-5f * (1 + std::abs(c0[at])));
          CHECK(std::abs(c2[at] - prod) <= 1e-5f * (1 + std::abs(prod)));
        }
    }
  }
}

TEST_CASE("small_gemm in bf16: the products of the operands rounded to bf16, summed in fp32 in vdpbf16ps's order") {
  // vdpbf16ps's order on every CPU (the instruction where AVX512-BF16 is compiled, the fp32
  // tile on reordered steps elsewhere): per pair of k the high half (k + 1) first, each term
  // rounded once (a bf16 product is exact in fp32). Bit for bit against a scalar emulation,
  // and never equal to fp32 on the raw operands.
  for (const auto& [M, N, K] : std::vector<std::array<Index, 3>>{{13, 13, 64}, {17, 33, 5}, {9, 47, 20}, {8, 16, 1}}) {
    for (int layout = 0; layout < 3; ++layout) {
      const std::vector<float> a = random_floats(4 * M * K, 90 + M), b = random_floats(4 * K * N, 95 + N);
      std::vector<float> ar = a, br = b;
      for (auto& v : ar) v = K::round_bf16(v);
      for (auto& v : br) v = K::round_bf16(v);
      const auto [a_rs, a_cs] = strides(layout, M, K);
      const auto [b_rs, b_cs] = strides(layout, K, N);
      const auto A = [&](Index i, Index k) { return ar[i * a_rs + k * a_cs]; };
      const auto B = [&](Index k, Index j) { return br[k * b_rs + j * b_cs]; };
      const std::vector<float> c_init = random_floats(M * N, 99);
      std::vector<float> want = c_init;
      for (Index i = 0; i < M; ++i)
        for (Index j = 0; j < N; ++j) {
          float acc = 0.0f;
          for (Index k = 0; k < K; k += 2) {
            if (k + 1 < K) acc += A(i, k + 1) * B(k + 1, j);
            acc += A(i, k) * B(k, j);
          }
          want[i * N + j] = c_init[i * N + j] + 0.5f * acc;
        }
      std::vector<float> c16 = c_init, c32 = c_init;
      K::small_gemm<float, true>(c16.data(), N, a.data(), a_rs, a_cs, b.data(), b_rs, b_cs, M, N, K, 0.5f, K::Out::add);
      K::small_gemm(c32.data(), N, a.data(), a_rs, a_cs, b.data(), b_rs, b_cs, M, N, K, 0.5f, K::Out::add);
      INFO("M " << M << " N " << N << " K " << K << " layout " << layout);
      CHECK(c16 == want);
      CHECK(c16 != c32);
    }
  }
}

namespace {
// The one-pass attention core (forward, recomputed probabilities, backward) against the
// reference that keeps the probabilities, for N samples of T tokens, width D, H heads.
void check_attention_against_reference(Index N, Index T, Index D, Index H, std::uint64_t seed) {
  const Index hd = D / H, ld = 3 * D;
  const std::vector<float> qkv = random_floats(N * T * 3 * D, seed), dctx = random_floats(N * T * D, seed + 1),
                           dqkv_init = random_floats(N * T * 3 * D, seed + 2);
  std::vector<float> ctx(N * T * D), stats(N * H * T * mae::kAttentionStats), att(N * H * T * T), ctx_ref(ctx.size()),
      att_ref(att.size());
  mae::attention_forward(ctx.data(), stats.data(), qkv.data(), N, T, D, H);
  mae::attention_probabilities(att.data(), qkv.data(), stats.data(), N, T, D, H);
  K::reference::attention_forward(ctx_ref.data(), att_ref.data(), qkv.data(), N, T, D, H);
  std::vector<float> dqkv = dqkv_init, dqkv_ref = dqkv_init;
  mae::attention_backward(dqkv.data(), dctx.data(), qkv.data(), stats.data(), N, T, D, H);
  K::reference::attention_backward(dqkv_ref.data(), dctx.data(), qkv.data(), att_ref.data(), N, T, D, H);
  // float sums of at most max(T, hd) terms of size ~1: a few ulps times the term count
  const auto c = mae_test::compare(ctx.data(), ctx_ref.data(), N * T * D, 1e-5, 1e-5);
  const auto a = mae_test::compare(att.data(), att_ref.data(), N * H * T * T, 1e-6, 1e-5);
  const auto g = mae_test::compare(dqkv.data(), dqkv_ref.data(), N * T * 3 * D, 1e-5, 1e-4);
  INFO("N " << N << " T " << T << " D " << D << " H " << H << ": ctx " << c.str() << "; att " << a.str() << "; dqkv "
            << g.str());
  CHECK(c.bad == 0);
  CHECK(a.bad == 0);
  CHECK(g.bad == 0);
  // The recomputed probabilities are the forward's bit for bit: the same product with v gives
  // the forward's ctx exactly (small_gemm sums each element in k order, as the forward's).
  std::vector<float> ctx_again(ctx.size());
  for (Index n = 0; n < N; ++n)
    for (Index h = 0; h < H; ++h)
      K::small_gemm<float, false>(ctx_again.data() + n * T * D + h * hd, D, att.data() + (n * H + h) * T * T, T, 1,
                                  qkv.data() + n * T * ld + 2 * D + h * hd, ld, 1, T, hd, T, 1.0f, K::Out::assign);
  CHECK(ctx_again == ctx);
  // Kept by the forward instead (short sequences): the same probabilities, ctx and gradients,
  // bit for bit, in both precisions
  for (const auto precision : {mae::Precision::fp32, mae::Precision::bf16}) {
    std::vector<float> ctx_r(ctx.size()), stats_r(stats.size()), att_r(att.size()), ctx_k(ctx.size()),
        stats_k(stats.size()), att_k(att.size(), std::numeric_limits<float>::quiet_NaN());
    mae::attention_forward(ctx_r.data(), stats_r.data(), qkv.data(), N, T, D, H, precision);
    mae::attention_probabilities(att_r.data(), qkv.data(), stats_r.data(), N, T, D, H, precision);
    mae::attention_forward(ctx_k.data(), stats_k.data(), qkv.data(), N, T, D, H, precision, att_k.data());
    std::vector<float> dqkv_r = dqkv_init, dqkv_k = dqkv_init;
    mae::attention_backward(dqkv_r.data(), dctx.data(), qkv.data(), stats_r.data(), N, T, D, H, mae::Grad::accumulate,
                            precision);
    mae::attention_backward(dqkv_k.data(), dctx.data(), qkv.data(), stats_k.data(), N, T, D, H, mae::Grad::accumulate,
                            precision, att_k.data());
    INFO("bf16 " << (precision == mae::Precision::bf16));
    CHECK(ctx_k == ctx_r);
    CHECK(stats_k == stats_r);
    CHECK(att_k == att_r);
    CHECK(dqkv_k == dqkv_r);
    CHECK(dqkv_k != dqkv_init);
  }
}

// Every preset's encoder (1 + its visible patches at the reference's mask ratio 0.75, and all
// patches: fine-tuning) and decoder (1 + L) token counts, at its widths and heads.
template <class Cfg>
void check_attention_of_preset(std::uint64_t seed) {
  const Index L = Cfg::num_patches, visible = mae::num_visible(L, 0.75);
  INFO("preset img " << Cfg::img_size << " patch " << Cfg::patch_size << " D " << Cfg::embed_dim);
  check_attention_against_reference(1, 1 + visible, Cfg::embed_dim, Cfg::num_heads, seed);
  check_attention_against_reference(1, 1 + L, Cfg::embed_dim, Cfg::num_heads, seed + 3);
  check_attention_against_reference(1, 1 + L, Cfg::decoder_embed_dim, Cfg::decoder_num_heads, seed + 6);
}
}  // namespace

TEST_CASE("attention core equals the naive reference (softmax(q k^T / sqrt(hd)) v), forward and backward") {
  // T spanning blocks of query rows (kAttentionRows), one whole block, a partial last one, a
  // short T
  const Index R = mae::kAttentionRows<float>;
  for (const Index T : {Index(7), R, R + 1, 2 * R + 3}) check_attention_against_reference(2, T, 32, 2, 80 + T);
}

TEST_CASE("attention core equals the naive reference at every preset's token counts") {
  namespace P = mae::presets;
  check_attention_of_preset<P::vit_tiny_28x28_gray<float>>(90);
  check_attention_of_preset<P::vit_tiny_32x32_rgb<float>>(91);
  check_attention_of_preset<P::vit_tiny_64x64_rgb<float>>(92);
  check_attention_of_preset<P::vit_tiny_96x96_rgb<float>>(93);
  check_attention_of_preset<P::vit_tiny_patch16_224<float>>(94);
  check_attention_of_preset<P::vit_base_patch16_128<float>>(95);
  check_attention_of_preset<P::vit_base_patch16_dec512d8b<float>>(96);
  check_attention_of_preset<P::vit_large_patch16_dec512d8b<float>>(97);
  check_attention_of_preset<P::vit_huge_patch14_dec512d8b<float>>(98);
}
