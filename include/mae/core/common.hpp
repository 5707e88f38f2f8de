// mae/core/common.hpp — the few things every layer shares: Eigen views over raw buffers, the
// error type, the layer contract (forward assigns, backward adds) and the rule for parallel
// loops.
//
// Layout: a batch of token vectors (N, T, D) is one row-major (N*T, D) matrix, byte for
// byte a contiguous PyTorch tensor. A PyTorch Linear weight (out, in) is a row-major
// (out, in) matrix: y = x W^T + b.
//
// Determinism: every parallel loop splits its work into fixed chunks whose size does not
// depend on the thread count, and each chunk is computed by one thread with the library's own
// single-threaded kernels (kernels/), whose every output element takes its terms in one fixed
// order. Results are therefore bitwise identical for any OMP_NUM_THREADS.
#ifndef MAE_CORE_COMMON_HPP
#define MAE_CORE_COMMON_HPP

#include <Eigen/Core>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mae {

using Index = std::ptrdiff_t;

template <class S>
using RowMatrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class S>
using MatMap = Eigen::Map<RowMatrix<S>>;
template <class S>
using ConstMatMap = Eigen::Map<const RowMatrix<S>>;
template <class S>
using StridedMap = Eigen::Map<RowMatrix<S>, 0, Eigen::OuterStride<>>;
template <class S>
using ConstStridedMap = Eigen::Map<const RowMatrix<S>, 0, Eigen::OuterStride<>>;
template <class S>
using RowVecMap = Eigen::Map<Eigen::Matrix<S, 1, Eigen::Dynamic>>;
template <class S>
using ConstRowVecMap = Eigen::Map<const Eigen::Matrix<S, 1, Eigen::Dynamic>>;

// T in a parameter list where it must not take part in deduction (so nullptr can be passed).
template <class T>
struct type_identity {
  using type = T;
};
template <class T>
using nondeduced = typename type_identity<T>::type;

// Every error the library reports: bad input shapes, bad files, bad configurations.
struct Error : std::runtime_error {
  explicit Error(const std::string& what) : std::runtime_error("mae: " + what) {}
};

// Work chunks: rows per chunk in row-parallel products, output channels per chunk in
// weight-gradient products. A chunk's size depends only on the problem size (never on the
// thread count), so results do not depend on threads. chunk_size splits n into an even number
// of chunks of at most about `target` items: even, so that two threads get equal shares.
inline constexpr Index kRowChunk = 256;
inline constexpr Index kChannelChunk = 128;

inline Index chunk_size(Index n, Index target) {
  const Index chunks = 2 * std::max<Index>(1, (n + 2 * target - 1) / (2 * target));
  return std::max<Index>(1, (n + chunks - 1) / chunks);
}
inline Index num_chunks(Index n, Index chunk) { return (n + chunk - 1) / chunk; }

// The layer contract, the same for every layer and operation of this library:
//  * `x_forward(out..., cache..., inputs..., params..., sizes...)` assigns its outputs and
//    what its backward needs (its cache), and nothing else.
//  * `x_backward(dinputs..., dparams..., dout, cache/inputs..., params..., sizes...)` ADDS
//    (+=) into every gradient buffer it is given, parameters and inputs alike, and never
//    changes the forward's cache (it may run twice). Residual branches and shared tensors
//    therefore sum for free; whoever owns a gradient zeroes it (a model's zero_grad()).
//  * The one exception is asked for by name: Grad::assign on an input gradient that is a
//    fresh scratch buffer makes the backward assign it, which saves zeroing it first.
enum class Grad { accumulate, assign };

// a * b rounded to T before anything adds to it: compilers may fuse `a * b + c` into one FMA
// (GCC does under -march with FMA), which rounds once instead of twice. Code that must give the
// bits of a reference built without FMA (PIL's image operations, torch's mixup) multiplies
// through this.
template <class T>
inline T unfused_mul(T a, T b) {
  T p = a * b;
#if defined(__GNUC__) && defined(__x86_64__)
  __asm__("" : "+x"(p));  // p must exist, rounded, in a register: nothing can fuse across this
#else
  volatile T q = p;
  p = q;
#endif
  return p;
}

inline bool in_parallel() {
#ifdef _OPENMP
  return omp_in_parallel() != 0;
#else
  return false;
#endif
}

// f(i) for i in [0, n), split between the threads (static schedule); in this thread alone when
// called from inside a parallel region (say, on one chunk of a parallel loop).
template <class F>
inline void parallel_for(Index n, F&& f) {
  if (n > 1 && !in_parallel()) {
#pragma omp parallel for schedule(static)
    for (Index i = 0; i < n; ++i) f(i);
  } else {
    for (Index i = 0; i < n; ++i) f(i);
  }
}

// f(i) for i in [0, n) on the threads, `chunk` indices at a time (dynamic schedule: for work
// of uneven cost, such as decoding files). An exception from f is rethrown after the loop:
// the one of the smallest i, whatever the thread count (indices past a failure are skipped).
template <class F>
inline void parallel_for_first_error(Index n, Index chunk, F&& f) {
  std::exception_ptr error;
  std::atomic<Index> error_at{n};
#pragma omp parallel for schedule(dynamic, chunk)
  for (Index i = 0; i < n; ++i) {
    if (i > error_at.load(std::memory_order_relaxed)) continue;
    try {
      f(i);
    } catch (...) {
#pragma omp critical
      if (i < error_at.load()) error = std::current_exception(), error_at = i;
    }
  }
  if (error) std::rethrow_exception(error);
}

// out[0..n) = 0 and out[0..n) = in[0..n); large buffers are split between the threads.
inline constexpr Index kCopyChunk = Index(1) << 16;
inline Index copy_chunk(Index n) { return n > 2 * kCopyChunk ? chunk_size(n, kCopyChunk) : std::max<Index>(n, 1); }
template <class S>
inline void zero(S* out, Index n) {
  const Index cs = copy_chunk(n);
  parallel_for(num_chunks(n, cs), [&](Index c) {
    std::memset(static_cast<void*>(out + c * cs), 0, sizeof(S) * static_cast<std::size_t>(std::min(cs, n - c * cs)));
  });
}
template <class S>
inline void copy(S* out, const S* in, Index n) {
  const Index cs = copy_chunk(n);
  parallel_for(num_chunks(n, cs), [&](Index c) {
    std::memcpy(static_cast<void*>(out + c * cs), in + c * cs,
                sizeof(S) * static_cast<std::size_t>(std::min(cs, n - c * cs)));
  });
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

// Inside a parallel region: this thread's share [begin, end) of n items split into `threads`
// contiguous ranges whose bounds are multiples of `step` (but the last, which ends at n).
struct ThreadRange {
  Index begin, end;
};
inline ThreadRange thread_range(Index n, Index step) {
#ifdef _OPENMP
  const Index t = omp_get_thread_num(), threads = omp_get_num_threads();
#else
  const Index t = 0, threads = 1;
#endif
  const Index steps = (n + step - 1) / step;
  return {std::min(n, steps * t / threads * step), std::min(n, steps * (t + 1) / threads * step)};
}

inline void set_num_threads(int n) {
#ifdef _OPENMP
  omp_set_num_threads(n);
#else
  (void)n;
#endif
}

}  // namespace mae

#endif  // MAE_CORE_COMMON_HPP
