// mae/gemm.hpp — C (M, N) += alpha A (M, K) B (K, N) for row-major C, with A and B each a
// row-major matrix or the transpose of one: the products of the linear layers.
//
// It runs Eigen's own sequential GEMM (the code behind `C.noalias() += A * B`: the same
// blocking, packing and gebp kernel, so the same results), with one difference: the packing
// buffers belong to the calling thread and are kept between calls. Eigen's product takes them
// from the heap whenever they exceed EIGEN_STACK_ALLOCATION_LIMIT (128 KiB), which is nearly
// every product of a training step; here a steady-state step allocates nothing.
// Single-threaded: call it inside a parallel loop, one chunk of C per call.
#ifndef MAE_GEMM_HPP
#define MAE_GEMM_HPP

#include "common.hpp"

#include <vector>

namespace mae {

// A matrix operand: `rows x cols` of a row-major buffer with row stride ld, or (transposed)
// the transpose of a row-major buffer with row stride ld.
template <class S>
struct GemmOperand {
  const S* data;
  Index ld;
  bool transposed = false;
};

namespace gemm_detail {

template <class S>
using AlignedVector = std::vector<S, Eigen::aligned_allocator<S>>;

// Eigen's blocking sizes for one product, pointing at this thread's packing buffers.
template <class S>
struct Blocking : Eigen::internal::level3_blocking<S, S> {
  Blocking(Index M, Index N, Index K) {
    // the row-major product runs as the column-major C^T = B^T A^T: Eigen's "rows" are N
    this->m_mc = N;
    this->m_nc = M;
    this->m_kc = K;
    Eigen::internal::computeProductBlockingSizes<S, S, 1>(this->m_kc, this->m_mc, this->m_nc, Index(1));
    static thread_local AlignedVector<S> a, b;
    if (static_cast<Index>(a.size()) < this->m_kc * this->m_mc) a.resize(static_cast<std::size_t>(this->m_kc * this->m_mc));
    if (static_cast<Index>(b.size()) < this->m_kc * this->m_nc) b.resize(static_cast<std::size_t>(this->m_kc * this->m_nc));
    this->m_blockA = a.data();
    this->m_blockB = b.data();
  }
};

template <class S, int AOrder, int BOrder>
inline void run(S* c, Index ldc, const S* a, Index lda, const S* b, Index ldb, Index M, Index N, Index K, S alpha) {
  Blocking<S> blocking(M, N, K);
  Eigen::internal::general_matrix_matrix_product<Index, S, AOrder, false, S, BOrder, false, Eigen::RowMajor, 1>::run(
      M, N, K, a, lda, b, ldb, c, 1, ldc, alpha, blocking, nullptr);
}

}  // namespace gemm_detail

// C (M, N; row stride ldc) += alpha A B, A (M, K), B (K, N).
template <class S>
inline void gemm(S* c, Index ldc, GemmOperand<S> A, GemmOperand<S> B, Index M, Index N, Index K, S alpha = S(1)) {
  if (M == 0 || N == 0 || K == 0) return;
  constexpr int R = Eigen::RowMajor, C = Eigen::ColMajor;  // a transposed row-major buffer is column-major
  if (!A.transposed && !B.transposed)
    gemm_detail::run<S, R, R>(c, ldc, A.data, A.ld, B.data, B.ld, M, N, K, alpha);
  else if (!A.transposed)
    gemm_detail::run<S, R, C>(c, ldc, A.data, A.ld, B.data, B.ld, M, N, K, alpha);
  else if (!B.transposed)
    gemm_detail::run<S, C, R>(c, ldc, A.data, A.ld, B.data, B.ld, M, N, K, alpha);
  else
    gemm_detail::run<S, C, C>(c, ldc, A.data, A.ld, B.data, B.ld, M, N, K, alpha);
}

}  // namespace mae

#endif  // MAE_GEMM_HPP
