// mae/kernels/reference.hpp — plain versions of the tuned kernels, for the tests to compare
// against (tests/test_kernels.cpp) and for a reader to see what each one computes. Slow,
// single-threaded, obviously right: triple loops accumulated in double.
#ifndef MAE_KERNELS_REFERENCE_HPP
#define MAE_KERNELS_REFERENCE_HPP

#include "bf16.hpp"           // round_bf16
#include "../core/common.hpp"
#include "format_scalar.hpp"  // GemmOperand

#include <cmath>
#include <vector>

namespace mae::kernels::reference {

// C (M, N; row stride ldc) += alpha A (M, K) B (K, N), operands as for kernels::gemm.
template <class S>
inline void gemm(S* c, Index ldc, GemmOperand<S> A, GemmOperand<S> B, Index M, Index N, Index K, S alpha = S(1)) {
  const auto a = [&](Index i, Index k) { return A.transposed ? A.data[k * A.ld + i] : A.data[i * A.ld + k]; };
  const auto b = [&](Index k, Index j) { return B.transposed ? B.data[j * B.ld + k] : B.data[k * B.ld + j]; };
  for (Index i = 0; i < M; ++i)
    for (Index j = 0; j < N; ++j) {
      double acc = 0;
      for (Index k = 0; k < K; ++k) acc += static_cast<double>(a(i, k)) * static_cast<double>(b(k, j));
      c[i * ldc + j] = static_cast<S>(c[i * ldc + j] + alpha * acc);
    }
}

// C (M, N; row stride ldc) += bf16(A) bf16(B) as kernels::gemm<formats::Bf16>: the operands rounded to
// bf16 (round to nearest even), the products summed in double.
inline void gemm_bf16(float* c, Index ldc, GemmOperand<float> A, GemmOperand<float> B, Index M, Index N, Index K) {
  const auto r = [](float x) { return static_cast<double>(round_bf16(x)); };
  const auto a = [&](Index i, Index k) { return r(A.transposed ? A.data[k * A.ld + i] : A.data[i * A.ld + k]); };
  const auto b = [&](Index k, Index j) { return r(B.transposed ? B.data[j * B.ld + k] : B.data[k * B.ld + j]); };
  for (Index i = 0; i < M; ++i)
    for (Index j = 0; j < N; ++j) {
      double acc = 0;
      for (Index k = 0; k < K; ++k) acc += a(i, k) * b(k, j);
      c[i * ldc + j] = static_cast<float>(c[i * ldc + j] + acc);
    }
}

// C (M, N; row stride ldc) = alpha A B (accumulate: +=), A (i, k) at a[i a_rs + k a_cs],
// B (k, j) at b[k b_rs + j b_cs], as kernels::small_gemm.
template <class S>
inline void small_gemm(S* c, Index ldc, const S* a, Index a_rs, Index a_cs, const S* b, Index b_rs, Index b_cs, Index M,
                       Index N, Index K, S alpha, bool accumulate) {
  for (Index i = 0; i < M; ++i)
    for (Index j = 0; j < N; ++j) {
      double acc = 0;
      for (Index k = 0; k < K; ++k) acc += static_cast<double>(a[i * a_rs + k * a_cs]) * b[k * b_rs + j * b_cs];
      c[i * ldc + j] = static_cast<S>((accumulate ? c[i * ldc + j] : S(0)) + alpha * acc);
    }
}

// Multi-head self-attention's core, as attention.hpp: per sample n and head h, with q, k, v
// the (T, hd) slices of qkv (N, T, 3D),  att = softmax(q k^T / sqrt(hd)),  ctx = att v.
template <class S>
inline void attention_forward(S* ctx, S* att, const S* qkv, Index N, Index T, Index D, Index H) {
  const Index hd = D / H, ld = 3 * D;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  std::vector<double> row(static_cast<std::size_t>(T));
  for (Index n = 0; n < N; ++n)
    for (Index h = 0; h < H; ++h) {
      const S* q = qkv + n * T * ld + h * hd;
      const S* k = q + D;
      const S* v = q + 2 * D;
      S* a = att + (n * H + h) * T * T;
      for (Index i = 0; i < T; ++i) {
        double mx = -INFINITY, sum = 0;
        for (Index j = 0; j < T; ++j) {
          double s = 0;
          for (Index d = 0; d < hd; ++d) s += static_cast<double>(q[i * ld + d]) * k[j * ld + d];
          row[j] = s * scale;
          mx = std::max(mx, row[j]);
        }
        for (Index j = 0; j < T; ++j) sum += (row[j] = std::exp(row[j] - mx));
        for (Index j = 0; j < T; ++j) a[i * T + j] = static_cast<S>(row[j] / sum);
        for (Index d = 0; d < hd; ++d) {
          double o = 0;
          for (Index j = 0; j < T; ++j) o += row[j] / sum * v[j * ld + d];
          ctx[(n * T + i) * D + h * hd + d] = static_cast<S>(o);
        }
      }
    }
}

// dqkv (N, T, 3D) += the gradient of <ctx, dctx> through attention_forward, given its att.
template <class S>
inline void attention_backward(S* dqkv, const S* dctx, const S* qkv, const S* att, Index N, Index T, Index D, Index H) {
  const Index hd = D / H, ld = 3 * D;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  std::vector<double> ds(static_cast<std::size_t>(T * T));
  for (Index n = 0; n < N; ++n)
    for (Index h = 0; h < H; ++h) {
      const Index q0 = n * T * ld + h * hd;
      const S *q = qkv + q0, *k = q + D, *v = q + 2 * D, *a = att + (n * H + h) * T * T;
      const S* dout = dctx + n * T * D + h * hd;
      S *dq = dqkv + q0, *dk = dq + D, *dv = dq + 2 * D;
      for (Index i = 0; i < T; ++i) {
        // ctx = a v  =>  da = dout v^T, dv += a^T dout;  a = softmax(s)  =>  ds = a (da - sum(da a))
        double dot = 0;
        for (Index j = 0; j < T; ++j) {
          double da = 0;
          for (Index d = 0; d < hd; ++d) da += static_cast<double>(dout[i * D + d]) * v[j * ld + d];
          ds[i * T + j] = da;
          dot += da * a[i * T + j];
        }
        for (Index j = 0; j < T; ++j) ds[i * T + j] = a[i * T + j] * (ds[i * T + j] - dot);
      }
      for (Index j = 0; j < T; ++j)
        for (Index d = 0; d < hd; ++d) {
          double gv = 0, gk = 0;
          for (Index i = 0; i < T; ++i) {
            gv += static_cast<double>(a[i * T + j]) * dout[i * D + d];
            gk += ds[i * T + j] * q[i * ld + d];
          }
          dv[j * ld + d] = static_cast<S>(dv[j * ld + d] + gv);
          dk[j * ld + d] = static_cast<S>(dk[j * ld + d] + gk * scale);
        }
      // s = q k^T * scale  =>  dq += ds k * scale
      for (Index i = 0; i < T; ++i)
        for (Index d = 0; d < hd; ++d) {
          double g = 0;
          for (Index j = 0; j < T; ++j) g += ds[i * T + j] * k[j * ld + d];
          dq[i * ld + d] = static_cast<S>(dq[i * ld + d] + g * scale);
        }
    }
}

}  // namespace mae::kernels::reference

#endif  // MAE_KERNELS_REFERENCE_HPP
