// mae/kernels/format_amx.hpp — the bf16 format on AMX-BF16 tiles, where the compiler targets
// AMX (__AMX_TILE__, __AMX_BF16__, as -march=sapphirerapids or native on such a CPU does) and
// Linux grants the process the tile state (amx_granted, asked once per process).
//
// tdpbf16ps multiplies a tile of A (16 rows x 16 pairs) by a tile of B (16 pairs x 16
// columns), the words laid out as format_bf16.hpp packs them, into a 16 x 16 fp32 tile of C:
// 8x the multiply-adds per instruction of vdpbf16ps. B's panels (NV packets of columns) are
// NV such tiles side by side, read in place with the panel's stride; A is read from its
// rounded rows (row-major words: a transposed A's words are transposed once per product).
// A block of C of 16 rows x one panel lives in NV accumulator tiles (tmm0-2) over the block of
// k; A's tile is tmm3, B's tmm4-6. Rows past M come from the zero-padded slab and pairs past
// the block from zeroed copies, so the tile shapes never change. Each element of C takes its
// k terms in one order whatever the split of the columns (the same bits for any thread
// count); the order inside an instruction is the hardware's, so the bits differ from
// vdpbf16ps's by float rounding.
#ifndef MAE_KERNELS_FORMAT_AMX_HPP
#define MAE_KERNELS_FORMAT_AMX_HPP

#include "format_bf16.hpp"

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__linux__)
#define MAE_AMX_BF16 1
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <cstdint>

namespace mae::kernels {

// Whether the bf16 products run on AMX-BF16 tiles: compiled for AMX and granted by Linux.
inline bool amx_granted() {
#ifdef MAE_AMX_BF16
  static const bool granted = syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) == 0;
  return granted;
#else
  return false;
#endif
}

#ifdef MAE_AMX_BF16
namespace formats {

struct Bf16Amx : Bf16Pairs {
  static_assert(P == 16, "AMX tiles hold 16 fp32 columns: the packets of B's panels must be AVX-512's");
  static constexpr Index MR = 16;  // a tile's rows

  // A's rounded words by rows (pair q of row i at data[i ld + q])
  struct A {
    const Word* data;
    Index ld;
  };
  struct AmxRowsBuffer;
  static A prepare_a(GemmOperand<float> a, Index M, Index K) {
    const Bf16Pairs::A w = Bf16Pairs::prepare_a(a, M, K);
    const Index np = bf16::pairs(K);
    if (w.s.qs == 1) return {w.data, w.s.rs};
    Word* const rows = thread_buffer<AmxRowsBuffer, Word>(M * np);  // the tiles read A's rows
    for (Index q = 0; q < np; ++q)
      for (Index r = 0; r < M; ++r) rows[r * np + q] = w.data[q * w.s.qs + r * w.s.rs];
    return {rows, np};
  }
  struct ATile {
    const Word* p;
    Index ld;
  };
  static constexpr Index slab_size() { return MR * (KC / 2); }
  // Rows [i0, i0 + nr) from step p0: in place when whole, else copied into 16 zero-padded rows
  static ATile a_tile(Word* slab, const A& a, Index i0, Index nr, Index p0, Index kc) {
    const Index q0 = p0 / 2, np = bf16::pairs(kc);
    if (nr == MR) return {a.data + i0 * a.ld + q0, a.ld};
    std::fill(slab, slab + MR * np, Word(0));
    for (Index r = 0; r < nr; ++r) std::copy_n(a.data + (i0 + r) * a.ld + q0, np, slab + r * np);
    return {slab, np};
  }

  static void begin() {  // per thread and product: tmm0-6, 16 rows of 64 bytes
    struct TileConfig {
      std::uint8_t palette = 1, start_row = 0, reserved[14] = {};
      std::uint16_t bytes_per_row[16] = {};
      std::uint8_t rows[16] = {};
    } t;
    for (int i = 0; i < 7; ++i) t.rows[i] = 16, t.bytes_per_row[i] = 64;
    _tile_loadconfig(&t);
  }
  static void end() { _tile_release(); }

  // C (16, W 16) += A (16 rows, pairs(kc)) B panel (pairs(kc), width W 16 words)
  template <int W>
  static void tile(float* c, Index ldc, ATile a, const Word* panel, Index kc, float /*alpha: 1*/) {
    constexpr Index n = W * 16;
    const Index np = bf16::pairs(kc);
    _tile_loadd(0, c, ldc * 4);
    if constexpr (W > 1) _tile_loadd(1, c + 16, ldc * 4);
    if constexpr (W > 2) _tile_loadd(2, c + 32, ldc * 4);
    alignas(64) Word at[16 * 16], bt[16 * n];
    for (Index q = 0; q < np; q += 16) {
      const Index qn = std::min<Index>(16, np - q);
      if (qn == 16) {
        _tile_loadd(3, a.p + q, a.ld * 4);
      } else {
        std::fill(at, at + 16 * 16, Word(0));
        for (Index r = 0; r < 16; ++r) std::copy_n(a.p + r * a.ld + q, qn, at + r * 16);
        _tile_loadd(3, at, 64);
      }
      const Word* b = panel + q * n;
      if (qn < 16) {
        std::fill(bt, bt + 16 * n, Word(0));
        std::copy_n(b, qn * n, bt);
        b = bt;
      }
      _tile_loadd(4, b, n * 4);
      _tile_dpbf16ps(0, 3, 4);
      if constexpr (W > 1) {
        _tile_loadd(5, b + 16, n * 4);
        _tile_dpbf16ps(1, 3, 5);
      }
      if constexpr (W > 2) {
        _tile_loadd(6, b + 32, n * 4);
        _tile_dpbf16ps(2, 3, 6);
      }
    }
    _tile_stored(0, c, ldc * 4);
    if constexpr (W > 1) _tile_stored(1, c + 16, ldc * 4);
    if constexpr (W > 2) _tile_stored(2, c + 32, ldc * 4);
  }
};

}  // namespace formats
#endif

}  // namespace mae::kernels

#endif  // MAE_KERNELS_FORMAT_AMX_HPP
