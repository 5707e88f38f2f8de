// dev/amx_probe.cpp — how fast AMX-BF16 tiles (tdpbf16ps) multiply on this CPU, with the
// operands in kernels/gemm_bf16.hpp's packed layout: pairs of k in 32-bit words, A row-major
// (row r's pairs contiguous), B in panels of 32 columns (pair q's 32 words contiguous). A
// 32 x 32 block of C is 2 x 2 accumulator tiles; per 16 pairs of k: two A tiles, two B tiles
// (16 pairs x 16 columns each, read with the panel's stride), four tdpbf16ps. Threads split
// B's panels. Checks C against a double-precision product of the same bf16 values.
//   g++ -O2 -march=native -fopenmp dev/amx_probe.cpp -o /tmp/amx_probe && /tmp/amx_probe [M N K]
#include <immintrin.h>
#include <omp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

struct TileConfig {
  std::uint8_t palette_id = 1, start_row = 0, reserved[14] = {};
  std::uint16_t colsb[16] = {};
  std::uint8_t rows[16] = {};
};

std::uint16_t to_bf16(float x) {  // round to nearest even, as gemm_bf16.hpp
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
double from_bf16(std::uint16_t b) {
  const std::uint32_t u = static_cast<std::uint32_t>(b) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

void configure_tiles() {  // per thread: tmm0-7 all 16 rows x 64 bytes
  TileConfig c;
  for (int t = 0; t < 8; ++t) c.rows[t] = 16, c.colsb[t] = 64;
  _tile_loadconfig(&c);
}

// C (M, N) = A (M, K) B (K, N); M, N multiples of 32, K of 32.
void amx_gemm(float* C, const std::uint32_t* A, const std::uint32_t* B, int M, int N, int K) {
  const int KP = K / 2, panels = N / 32;
#pragma omp parallel
  {
    configure_tiles();
#pragma omp for schedule(static)
    for (int p = 0; p < panels; ++p) {
      const std::uint32_t* bp = B + static_cast<long>(p) * KP * 32;
      for (int i = 0; i < M; i += 32) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        const std::uint32_t* a0 = A + static_cast<long>(i) * KP;
        const std::uint32_t* a1 = a0 + 16L * KP;
        for (int q = 0; q < KP; q += 16) {
          _tile_loadd(4, a0 + q, KP * 4);
          _tile_loadd(5, a1 + q, KP * 4);
          _tile_loadd(6, bp + q * 32, 128);
          _tile_loadd(7, bp + q * 32 + 16, 128);
          _tile_dpbf16ps(0, 4, 6);
          _tile_dpbf16ps(1, 4, 7);
          _tile_dpbf16ps(2, 5, 6);
          _tile_dpbf16ps(3, 5, 7);
        }
        float* c = C + static_cast<long>(i) * N + p * 32;
        _tile_stored(0, c, N * 4);
        _tile_stored(1, c + 16, N * 4);
        _tile_stored(2, c + 16L * N, N * 4);
        _tile_stored(3, c + 16L * N + 16, N * 4);
      }
    }
    _tile_release();
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int M = argc > 3 ? std::atoi(argv[1]) : 2048, N = argc > 3 ? std::atoi(argv[2]) : 2048,
            K = argc > 3 ? std::atoi(argv[3]) : 2048;
  if (M % 32 || N % 32 || K % 32) return std::fprintf(stderr, "M, N, K must be multiples of 32\n"), 1;
  if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) != 0)
    return std::fprintf(stderr, "the kernel refuses AMX tile data to this process (no AMX?)\n"), 1;
  std::vector<std::uint16_t> a(static_cast<long>(M) * K), b(static_cast<long>(K) * N);
  std::srand(7);
  for (auto& x : a) x = to_bf16(std::rand() / float(RAND_MAX) - 0.5f);
  for (auto& x : b) x = to_bf16(std::rand() / float(RAND_MAX) - 0.5f);
  const int KP = K / 2;
  std::vector<std::uint32_t> A(static_cast<long>(M) * KP), B(static_cast<long>(KP) * N);
  for (long r = 0; r < M; ++r)  // a (r, k) row-major: word (r, q) = a(r, 2q) | a(r, 2q + 1) << 16
    for (int q = 0; q < KP; ++q) A[r * KP + q] = a[r * K + 2 * q] | std::uint32_t(a[r * K + 2 * q + 1]) << 16;
  for (int p = 0; p < N / 32; ++p)  // b (k, j) row-major, into panels of 32 columns
    for (int q = 0; q < KP; ++q)
      for (int j = 0; j < 32; ++j) {
        const long col = p * 32 + j;
        B[(static_cast<long>(p) * KP + q) * 32 + j] = b[2L * q * N + col] | std::uint32_t(b[(2L * q + 1) * N + col])
                                                                                << 16;
      }
  std::vector<float> C(static_cast<long>(M) * N);
  amx_gemm(C.data(), A.data(), B.data(), M, N, K);  // warm, and the values to check
  double worst = 0;
  for (int t = 0; t < 64; ++t) {
    const long r = std::rand() % M, j = std::rand() % N;
    double want = 0, scale = 0;
    for (long k = 0; k < K; ++k)
      want += from_bf16(a[r * K + k]) * from_bf16(b[k * N + j]),
          scale += std::fabs(from_bf16(a[r * K + k]) * from_bf16(b[k * N + j]));
    worst = std::max(worst, std::fabs(C[r * N + j] - want) / scale);
  }
  const int reps = 10;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) amx_gemm(C.data(), A.data(), B.data(), M, N, K);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
  std::printf("AMX bf16 %d x %d x %d, %d threads: %.2f ms, %.0f GFLOP/s; worst |C - exact| / sum|terms| %.1e\n", M, N,
              K, omp_get_max_threads(), s * 1e3, 2.0 * M * N * K / s / 1e9, worst);
  return worst < 1e-5 ? 0 : 1;
}
