// mae/kernels/formats.hpp — the operand formats of gemm.hpp's driver, and which one each
// precision of the products uses.
//
// A format says how a product's operands are stored and multiplied; the driver (gemm.hpp)
// owns the loop nest, the blocking and the thread split, and asks the format for:
//   Value, Word             the operands' type, and what packed operands hold
//   MR, P, NV, NR           the register tile: MR rows x NV packets of P columns (NR = NV P)
//   KC, MC, NC, block_k(K)  the cache blocks, and the length of K's blocks
//   rows(kc)                packed rows of B for kc steps of k (kc, or its pairs)
//   prepare_a(A, M, K)      A once per product (as it is, or rounded)
//   a_tile(slab, A, i, nr, p0, kc), slab_size()   MR rows of A for a tile (packed, or in place)
//   pack_b(out, B, p0, kc, j0, nc)               a block of B as panels of NR columns
//   tile<W>(c, ldc, a, panel, kc, alpha)         C (MR, W packets) += alpha A B
//   kScales                 whether the tile applies alpha (the bf16 tiles add A B: alpha 1)
//   begin(), end()          optional, per product and thread (AMX's tile configuration)
//
//   formats::Scalar<S>  fp32 / fp64 operands, FMA on Eigen's packets      (format_scalar.hpp)
//   formats::Bf16Portable, formats::Bf16Dot (vdpbf16ps)                 (format_bf16.hpp)
//   formats::Bf16Amx (tdpbf16ps)                                        (format_amx.hpp)
//   formats::Bf16       the bf16 format of this build: Bf16Dot where AVX512-BF16 is compiled,
//                       else Bf16Portable; Bf16Amx taken instead at run time where granted
//                       (the same packed words)
#ifndef MAE_KERNELS_FORMATS_HPP
#define MAE_KERNELS_FORMATS_HPP

#include "format_amx.hpp"
#include "format_bf16.hpp"
#include "format_scalar.hpp"

#include <type_traits>

namespace mae::kernels {

// The arithmetic of the products: the operands as they are, or rounded to bf16 (sums in fp32).
enum class Precision { fp32, bf16 };

namespace formats {

#ifdef __AVX512BF16__
struct Bf16 : Bf16Dot {
#else
struct Bf16 : Bf16Portable {
#endif
#ifdef MAE_AMX_BF16
  using Faster = Bf16Amx;  // at run time, where amx_granted()
  static bool faster_available() { return amx_granted(); }
#endif
};

}  // namespace formats

// The format of a linear layer's products in precision P.
template <class S, Precision P>
using ProductFormat = std::conditional_t<P == Precision::bf16, formats::Bf16, formats::Scalar<S>>;

}  // namespace mae::kernels

#endif  // MAE_KERNELS_FORMATS_HPP
