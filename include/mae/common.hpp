// mae/common.hpp — the few things every layer shares: Eigen views over raw buffers, the
// error type, and the rule for parallel loops.
//
// Layout: a batch of token vectors (N, T, D) is one row-major (N*T, D) matrix, byte for
// byte a contiguous PyTorch tensor. A PyTorch Linear weight (out, in) is a row-major
// (out, in) matrix: y = x W^T + b.
//
// Determinism: every parallel loop below splits its work into fixed chunks whose size does
// not depend on the thread count, and each chunk is computed by one thread with a serial
// Eigen product (Eigen runs single-threaded inside an OpenMP parallel region). Results are
// therefore bitwise identical for any OMP_NUM_THREADS.
#ifndef MAE_COMMON_HPP
#define MAE_COMMON_HPP

#include <Eigen/Core>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mae {

using Index = std::ptrdiff_t;

template <class S> using RowMatrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class S> using MatMap = Eigen::Map<RowMatrix<S>>;
template <class S> using ConstMatMap = Eigen::Map<const RowMatrix<S>>;
template <class S> using StridedMap = Eigen::Map<RowMatrix<S>, 0, Eigen::OuterStride<>>;
template <class S> using ConstStridedMap = Eigen::Map<const RowMatrix<S>, 0, Eigen::OuterStride<>>;
template <class S> using RowVecMap = Eigen::Map<Eigen::Matrix<S, 1, Eigen::Dynamic>>;
template <class S> using ConstRowVecMap = Eigen::Map<const Eigen::Matrix<S, 1, Eigen::Dynamic>>;

// Every error the library reports: bad input shapes, bad files, bad configurations.
struct Error : std::runtime_error {
  explicit Error(const std::string& what) : std::runtime_error("mae: " + what) {}
};

// Work chunks: rows per chunk in row-parallel products, output channels per chunk in
// weight-gradient products. A chunk's size depends only on the problem size (never on the
// thread count), so results do not depend on threads. chunk_size splits n into an even number
// of chunks of at most about `target` items: even, so that two threads get equal shares.
inline constexpr Index kRowChunk = 128;
inline constexpr Index kChannelChunk = 64;

inline Index chunk_size(Index n, Index target) {
  const Index chunks = 2 * std::max<Index>(1, (n + 2 * target - 1) / (2 * target));
  return std::max<Index>(1, (n + chunks - 1) / chunks);
}
inline Index num_chunks(Index n, Index chunk) { return (n + chunk - 1) / chunk; }

// out[0..n) = 0
template <class S>
inline void zero(S* out, Index n) {
  std::memset(static_cast<void*>(out), 0, sizeof(S) * static_cast<std::size_t>(n));
}

// Grow a buffer to at least n elements (never shrinks: steady state allocates nothing).
template <class S>
inline S* ensure(std::vector<S>& buf, Index n) {
  if (static_cast<Index>(buf.size()) < n) buf.resize(static_cast<std::size_t>(n));
  return buf.data();
}

inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline void set_num_threads(int n) {
#ifdef _OPENMP
  omp_set_num_threads(n);
#else
  (void)n;
#endif
}

}  // namespace mae

#endif  // MAE_COMMON_HPP
