// mae/kernels/arch.hpp — what the tuned kernels know about the CPU, in one place: Eigen's
// SIMD packet of the compile target, the register file, and the register-tile shapes of the
// two products (gemm.hpp, small_gemm.hpp); plus the 8 x 8 register transpose both use.
//
// The tile shapes follow the register file: MR x NV packets of accumulators, NV packets of B
// and one broadcast of A must fit. With 32 vector registers (AVX-512) 8 x 3 packets (24
// accumulators); with 16 (AVX2) 6 x 2 (12 accumulators, BLIS's Haswell shape). A 4 x 3 tile
// with 16 registers leaves none for B: GCC then reads each B packet once per row, and the
// 2048^3 product ran at 49 GFLOP/s per core on a Zen 3 (AVX2) against 90 for the FMA loop.
#ifndef MAE_KERNELS_ARCH_HPP
#define MAE_KERNELS_ARCH_HPP

#include "../core/common.hpp"

#include <cstdint>
#include <type_traits>
#include <vector>

namespace mae::kernels {

namespace ei = Eigen::internal;
template <class S>
using Packet = typename ei::packet_traits<S>::type;
template <class S>
inline constexpr Index kPacket = ei::unpacket_traits<Packet<S>>::size;  // values per packet

inline constexpr bool kWideRegisterFile = EIGEN_ARCH_DEFAULT_NUMBER_OF_REGISTERS >= 32;
// Rows of every register tile (gemm's and small_gemm's): 8 with 32 registers, 6 with 16.
inline constexpr Index kTileRows = kWideRegisterFile ? 8 : 6;
// Packets of B per gemm tile row (small_gemm uses at most 2).
inline constexpr int kGemmTilePackets = kWideRegisterFile ? 3 : 2;

// For the packing of small products' operands (attention's), which must inline into its
// caller: called out of line once per small product, the call and the strides it no longer
// sees as constants made bf16 attention backward 5-8% slower (docs/performance.md).
#if defined(__GNUC__) || defined(__clang__)
#define MAE_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define MAE_ALWAYS_INLINE inline
#endif

template <class S>
using AlignedVector = std::vector<S, Eigen::aligned_allocator<S>>;

#ifdef EIGEN_VECTORIZE_AVX
// An 8 x 8 block of floats transposed in AVX registers: out[k * ldo + i] = in[i * ldi + k] for
// k < 8 and i < rows (rows <= 8); each store writes 8 values, out[k * ldo + rows..8) zeros.
inline void transpose8x8(float* out, Index ldo, const float* in, Index ldi, int rows) {
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"  // __m256's vector attribute in a template argument
#endif
  ei::PacketBlock<ei::Packet8f, 8> blk;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
  for (int r = 0; r < 8; ++r)
    blk.packet[r] = r < rows ? ei::ploadu<ei::Packet8f>(in + r * ldi) : ei::pset1<ei::Packet8f>(0.f);
  ei::ptranspose(blk);
  for (int k = 0; k < 8; ++k) ei::pstoreu(out + k * ldo, blk.packet[k]);
}
#endif

// out[k * ldo + i] = in[i * ldi + k] for i < rows, k < cols: a transposing copy, by 8 x 8
// blocks of AVX registers where there are some. S: float, or 32-bit words (bf16 pairs), moved
// through the same registers as bits (loads, shuffles and stores: no arithmetic, NaNs intact).
template <class S>
inline void transpose_copy(S* out, Index ldo, const S* in, Index ldi, Index rows, Index cols) {
  Index i0 = 0;
#ifdef EIGEN_VECTORIZE_AVX
  if constexpr (std::is_same_v<S, float> || std::is_same_v<S, std::uint32_t>) {
    // the intrinsics behind ploadu / pstoreu may alias any type
    float* const fout = reinterpret_cast<float*>(out);
    const float* const fin = reinterpret_cast<const float*>(in);
    for (; i0 + 8 <= rows; i0 += 8) {
      Index k0 = 0;
      for (; k0 + 8 <= cols; k0 += 8) transpose8x8(fout + k0 * ldo + i0, ldo, fin + i0 * ldi + k0, ldi, 8);
      for (Index i = i0; i < i0 + 8; ++i)
        for (Index k = k0; k < cols; ++k) out[k * ldo + i] = in[i * ldi + k];
    }
  }
#endif
  for (Index i = i0; i < rows; ++i)
    for (Index k = 0; k < cols; ++k) out[k * ldo + i] = in[i * ldi + k];
}

// A grow-only buffer of at least n values that belongs to the calling thread: one per
// (Tag, scalar), so kernels that are in use at the same time never share one. Steady-state
// calls allocate nothing; the first call of a thread (or a larger problem) does.
template <class Tag, class S>
inline S* thread_buffer(Index n) {
  static thread_local AlignedVector<S> buf;
  if (static_cast<Index>(buf.size()) < n) buf.resize(static_cast<std::size_t>(n));
  return buf.data();
}

}  // namespace mae::kernels

#endif  // MAE_KERNELS_ARCH_HPP
