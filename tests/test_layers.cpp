// layers/: gradient checks of every layer, in double, against central differences; the
// cross-entropies (label smoothing; soft targets against timm), the position tables (sin-cos,
// interpolate_pos_embed against torch), patchify and masking.
#include "test_util.hpp"

#include <array>
#include <limits>

using mae::Index;
using mae_test::grad_check;
using mae_test::GradTarget;
using mae_test::random_floats;
using mae_test::random_vector;
using V = std::vector<double>;

TEST_CASE("linear: gradient check of input, weight and bias") {
  // 70 rows: split between the threads by columns (at most kFewRows); 300: by chunks of rows.
  // More than one channel chunk either way.
  static_assert(mae::kernels::kFewRows >= 70 && mae::kernels::kFewRows < 300, "one case on each side of the split");
  for (const Index rows : {Index(70), Index(300)}) {
    const Index in = 5, out = 37;
    V x = random_vector(rows * in, 1), w = random_vector(out * in, 2), b = random_vector(out, 3);
    V dx(x.size()), dw(w.size()), db(b.size()), y(rows * out);
    auto fwd = [&] {
      mae::linear_forward(y.data(), x.data(), w.data(), b.data(), rows, in, out);
      return y;
    };
    auto bwd = [&](const V& G) {
      mae::linear_backward(dx.data(), dw.data(), db.data(), G.data(), x.data(), w.data(), rows, in, out);
    };
    auto rep = grad_check(
        fwd, bwd,
        {{"x", x.data(), dx.data(), rows * in}, {"w", w.data(), dw.data(), out * in}, {"b", b.data(), db.data(), out}});
    INFO("rows " << rows << ": " << rep.str());
    CHECK(rep.ok);
  }
}

TEST_CASE("the gradient check catches a gradient that is off by 0.1%") {
  const Index rows = 4, in = 3, out = 2;
  V x = random_vector(rows * in, 1), w = random_vector(out * in, 2), b = random_vector(out, 3);
  V dx(x.size()), dw(w.size()), db(b.size()), y(rows * out);
  auto fwd = [&] {
    mae::linear_forward(y.data(), x.data(), w.data(), b.data(), rows, in, out);
    return y;
  };
  auto bwd = [&](const V& G) {
    V dwt(w.size(), 0.0);
    mae::linear_backward(dx.data(), dwt.data(), db.data(), G.data(), x.data(), w.data(), rows, in, out);
    for (std::size_t i = 0; i < w.size(); ++i) dw[i] += 1.001 * dwt[i];  // the planted error
  };
  auto rep = grad_check(fwd, bwd, {{"w", w.data(), dw.data(), out * in}});
  INFO(rep.str());
  CHECK_FALSE(rep.ok);
}

TEST_CASE("the gradient check catches a backward that assigns instead of accumulating") {
  const Index n = 10;
  V x = random_vector(n, 1), dx(n), y(n);
  auto fwd = [&] {
    mae::gelu_forward(y.data(), x.data(), n);
    return y;
  };
  auto bwd = [&](const V& G) {
    std::fill(dx.begin(), dx.end(), 0.0);  // the planted error: overwrites the prefill
    mae::gelu_backward(dx.data(), x.data(), G.data(), n);
  };
  CHECK_FALSE(grad_check(fwd, bwd, {{"x", x.data(), dx.data(), n}}).ok);
}

TEST_CASE("layernorm: gradient check of input, weight and bias") {
  const Index rows = 6, C = 40;  // more than one channel chunk
  V x = random_vector(rows * C, 4), w = random_vector(C, 5), b = random_vector(C, 6);
  V dx(x.size()), dw(C), db(C), y(x.size()), mean(rows), rstd(rows);
  auto fwd = [&] {
    mae::layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), rows, C);
    return y;
  };
  auto bwd = [&](const V& G) {
    mae::layernorm_backward(dx.data(), dw.data(), db.data(), G.data(), x.data(), w.data(), mean.data(), rstd.data(),
                            rows, C);
  };
  auto rep = grad_check(
      fwd, bwd, {{"x", x.data(), dx.data(), rows * C}, {"w", w.data(), dw.data(), C}, {"b", b.data(), db.data(), C}});
  INFO(rep.str());
  CHECK(rep.ok);
}

TEST_CASE("layernorm: forward matches the definition (biased variance, eps 1e-6)") {
  const Index C = 4;
  V x{1, 2, 3, 10}, w{1, 1, 1, 1}, b{0, 0, 0, 0}, y(4), mean(1), rstd(1);
  mae::layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), 1, C);
  // mean 4, biased variance (9 + 4 + 1 + 36) / 4 = 12.5
  CHECK(mean[0] == doctest::Approx(4.0).epsilon(1e-15));
  CHECK(rstd[0] == doctest::Approx(1.0 / std::sqrt(12.5 + 1e-6)).epsilon(1e-14));
  CHECK(y[3] == doctest::Approx(6.0 / std::sqrt(12.5 + 1e-6)).epsilon(1e-14));
}

TEST_CASE("layernorm backward with dinp_from: dinp = dinp_from + the gradient, as a copy and +=, bit for bit") {
  using F = std::vector<float>;
  const Index rows = 37, C = 48;
  const F x = random_floats(rows * C, 11), w = random_floats(C, 12), b = random_floats(C, 13),
          dy = random_floats(rows * C, 14), from = random_floats(rows * C, 15);
  F y(x.size()), mean(rows), rstd(rows);
  mae::layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), rows, C);
  F dx_copy = from, dw0(C), db0(C), dw1(C), db1(C);
  mae::layernorm_backward(dx_copy.data(), dw0.data(), db0.data(), dy.data(), x.data(), w.data(), mean.data(),
                          rstd.data(), rows, C);
  F dx_fused(x.size(), std::numeric_limits<float>::quiet_NaN()), dx_inplace = from;
  mae::layernorm_backward(dx_fused.data(), dw1.data(), db1.data(), dy.data(), x.data(), w.data(), mean.data(),
                          rstd.data(), rows, C, from.data());
  CHECK(dx_fused == dx_copy);
  CHECK(dw1 == dw0);
  CHECK(db1 == db0);
  // dinp_from may be dinp itself
  mae::layernorm_backward(dx_inplace.data(), dw1.data(), db1.data(), dy.data(), x.data(), w.data(), mean.data(),
                          rstd.data(), rows, C, dx_inplace.data());
  CHECK(dx_inplace == dx_copy);
}

TEST_CASE("gelu: exact erf form and its gradient") {
  V x{-3.0, -0.5, 0.0, 0.7, 2.0}, y(5);
  mae::gelu_forward(y.data(), x.data(), 5);
  CHECK(y[1] == doctest::Approx(-0.5 * 0.5 * (1 + std::erf(-0.5 / std::sqrt(2.0)))).epsilon(1e-15));
  // the tanh approximation differs from the exact form by ~1e-4 at x = 2: exact is 1.9544997
  CHECK(y[4] == doctest::Approx(1.9544997361036416).epsilon(1e-12));
  const Index n = 50;
  V a = random_vector(n, 7, 2.0), da(n), out(n);
  auto rep = grad_check(
      [&] {
        mae::gelu_forward(out.data(), a.data(), n);
        return out;
      },
      [&](const V& G) { mae::gelu_backward(da.data(), a.data(), G.data(), n); }, {{"x", a.data(), da.data(), n}});
  INFO(rep.str());
  CHECK(rep.ok);
}

TEST_CASE("attention core: gradient check of q, k and v") {
  // the second T spans two blocks of query rows (kAttentionRows: 24 with AVX2, 32 with
  // AVX-512), the last one partial
  for (const Index T : {Index(5), mae::kAttentionRows<double> + 5}) {
    const Index N = 2, D = 12, H = 3;
    V qkv = random_vector(N * T * 3 * D, 8), dqkv(qkv.size()), ctx(N * T * D), stats(N * H * T * mae::kAttentionStats);
    auto fwd = [&] {
      mae::attention_forward(ctx.data(), stats.data(), qkv.data(), N, T, D, H);
      return ctx;
    };
    auto bwd = [&](const V& G) {
      mae::attention_backward(dqkv.data(), G.data(), qkv.data(), stats.data(), N, T, D, H);
    };
    auto rep = grad_check(fwd, bwd, {{"qkv", qkv.data(), dqkv.data(), N * T * 3 * D}});
    INFO("T " << T << ": " << rep.str());
    CHECK(rep.ok);
  }
}

// Binds a BlockParams<double> into a TensorStore for the checks below.
struct BlockFixture {
  mae::BlockShape s;
  mae::TensorStore<double> params, grads;
  mae::BlockParams<double> p, g;
  explicit BlockFixture(mae::BlockShape shape) : s(shape) {
    params.build([&](auto&& f) { mae::visit_block(p, "", s, f); });
    grads.build([&](auto&& f) { mae::visit_block(g, "", s, f); });
    V init = random_vector(params.size(), 9, 0.3);
    std::copy(init.begin(), init.end(), params.data());
  }
};

TEST_CASE("transformer block: gradient check of input and all twelve parameters") {
  const Index N = 2, T = 4;
  BlockFixture bf({8, 2, 16});
  V x = random_vector(N * T * 8, 10), dx(x.size()), y(x.size());
  mae::BlockCache<double> cache;
  mae::BlockScratch<double> scratch;
  auto fwd = [&] {
    mae::block_forward(y.data(), cache, x.data(), bf.p, N, T, bf.s);
    return y;
  };
  auto bwd = [&](const V& G) {
    mae::block_backward(dx.data(), bf.g, scratch, G.data(), x.data(), cache, bf.p, N, T, bf.s);
  };
  std::vector<GradTarget> targets{{"x", x.data(), dx.data(), N * T * 8}};
  for (const auto& t : bf.params.tensors())
    targets.push_back({t.name, bf.params.data() + t.offset, bf.grads.data() + t.offset, t.size});
  CHECK(targets.size() == 13);
  auto rep = grad_check(fwd, bwd, targets);
  INFO(rep.str());
  CHECK(rep.ok);
}

TEST_CASE("patch embedding: gradient check of images, conv weight and bias") {
  const mae::PatchShape s{2, 3, 2};  // C = 2, p = 3, G = 2: 6x6 images
  const Index N = 2, D = 5, K = 2 * 3 * 3, L = 4;
  V img = random_vector(N * 2 * 6 * 6, 11), dimg(img.size()), w = random_vector(D * K, 12), dw(w.size()),
    b = random_vector(D, 13), db(D), out(N * L * D), cols(N * L * K), dcols(cols.size());
  mae::PatchEmbedParams<double> pw{w.data(), b.data()}, pg{dw.data(), db.data()};
  auto fwd = [&] {
    mae::patch_embed_forward(out.data(), cols.data(), img.data(), pw, N, s, D);
    return out;
  };
  auto bwd = [&](const V& G) {
    mae::patch_embed_backward(dimg.data(), pg, dcols.data(), G.data(), cols.data(), pw, N, s, D);
  };
  auto rep = grad_check(fwd, bwd,
                        {{"imgs", img.data(), dimg.data(), static_cast<Index>(img.size())},
                         {"weight", w.data(), dw.data(), D * K},
                         {"bias", b.data(), db.data(), D}});
  INFO(rep.str());
  CHECK(rep.ok);
}

TEST_CASE("patch embedding equals a stride-p convolution with a (D, C, p, p) weight") {
  const mae::PatchShape s{3, 2, 2};  // C = 3, p = 2, G = 2: 4x4 images
  const Index D = 4, W = 4;
  V img = random_vector(3 * W * W, 14), w = random_vector(D * 12, 15), b = random_vector(D, 16), out(4 * D),
    cols(4 * 12);
  mae::patch_embed_forward(out.data(), cols.data(), img.data(), mae::PatchEmbedParams<double>{w.data(), b.data()}, 1, s,
                           D);
  for (Index r = 0; r < 2; ++r)
    for (Index c = 0; c < 2; ++c)
      for (Index o = 0; o < D; ++o) {
        double acc = b[o];  // conv: sum over ch, i, j of w[o, ch, i, j] * img[ch, r*p + i, c*p + j]
        for (Index ch = 0; ch < 3; ++ch)
          for (Index i = 0; i < 2; ++i)
            for (Index j = 0; j < 2; ++j)
              acc += w[((o * 3 + ch) * 2 + i) * 2 + j] * img[(ch * W + r * 2 + i) * W + c * 2 + j];
        CHECK(out[(r * 2 + c) * D + o] == doctest::Approx(acc).epsilon(1e-13));
      }
}

TEST_CASE("masked MSE loss: value and gradient, with and without norm_pix") {
  const Index rows = 6, P = 5;
  V pred = random_vector(rows * P, 17), target = random_vector(rows * P, 18), dpred(pred.size()), lnl(rows);
  V mask{0, 1, 1, 0, 1, 0};
  double expected = 0;
  for (Index r = 0; r < rows; ++r) {
    double e = 0;
    for (Index j = 0; j < P; ++j) e += (pred[r * P + j] - target[r * P + j]) * (pred[r * P + j] - target[r * P + j]);
    expected += mask[r] * e / P;
  }
  expected /= 3.0;  // three removed patches
  CHECK(mae::masked_mse_forward(lnl.data(), pred.data(), target.data(), mask.data(), rows, P) ==
        doctest::Approx(expected).epsilon(1e-14));
  auto fwd = [&] { return V{mae::masked_mse_forward(lnl.data(), pred.data(), target.data(), mask.data(), rows, P)}; };
  auto bwd = [&](const V& G) {
    mae::masked_mse_backward(dpred.data(), pred.data(), target.data(), mask.data(), rows, P, G[0]);
  };
  auto rep = grad_check(fwd, bwd, {{"pred", pred.data(), dpred.data(), rows * P}});
  INFO(rep.str());
  CHECK(rep.ok);
  // norm_pix: per patch, mean 0 and UNBIASED variance ~1 (var / (var + 1e-6))
  V t = random_vector(2 * P, 19, 4.0);
  mae::normalize_patches(t.data(), 2, P);
  for (Index r = 0; r < 2; ++r) {
    double m = 0, v = 0;
    for (Index j = 0; j < P; ++j) m += t[r * P + j];
    m /= P;
    for (Index j = 0; j < P; ++j) v += (t[r * P + j] - m) * (t[r * P + j] - m);
    CHECK(std::abs(m) < 1e-12);
    CHECK(v / (P - 1) == doctest::Approx(1.0).epsilon(1e-6));
  }
}

TEST_CASE("token gather (masking): gradient check") {
  const Index N = 2, L = 5, K = 2, D = 3, T = 3;
  std::vector<std::int64_t> sh{4, 1, 0, 2, 3, 2, 0, 4, 1, 3};
  V x = random_vector(N * L * D, 20), dx(x.size()), out(N * T * D, 0.0);
  auto fwd = [&] {
    mae::gather_tokens(out.data() + D, T, x.data(), sh.data(), N, L, K, D);
    return out;
  };
  auto bwd = [&](const V& G) { mae::gather_tokens_backward(dx.data(), G.data() + D, T, sh.data(), N, L, K, D); };
  auto rep = grad_check(fwd, bwd, {{"x", x.data(), dx.data(), N * L * D}});
  INFO(rep.str());
  CHECK(rep.ok);
  CHECK(out[D + 0] == x[4 * D + 0]);  // image 0, first kept token = patch 4
}

TEST_CASE("linear: both splits between threads (by columns, few rows; by rows) give the same bits") {
  // The first 70 rows of a 300-row product (chunks of rows) against the 70-row product alone
  // (columns per thread): forward, dX (Grad::assign, and the fused per-block work).
  using F = std::vector<float>;
  const Index rows = 300, few = 70, in = 200, out = 170;
  const F x = random_floats(rows * in, 1), w = random_floats(out * in, 2), b = random_floats(out, 3),
          r = random_floats(rows * out, 4), dy = random_floats(rows * out, 5);
  F y(rows * out), y_few(few * out), dx(rows * in), dx_few(few * in), dw(out * in), db(out);
  mae::linear_forward(y.data(), x.data(), w.data(), b.data(), rows, in, out, mae::LinearForwardOptions<float>{}.plus(r.data()));
  mae::linear_forward(y_few.data(), x.data(), w.data(), b.data(), few, in, out,
                      mae::LinearForwardOptions<float>{}.plus(r.data()));
  CHECK(F(y.begin(), y.begin() + few * out) == y_few);
  std::vector<int> seen(rows * in, 0);  // the per-block work visits every element once
  const auto count = [&](Index r0, Index nr, Index j0, Index nc) {
    for (Index i = r0; i < r0 + nr; ++i)
      for (Index j = j0; j < j0 + nc; ++j) ++seen[i * in + j];
  };
  mae::linear_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), rows, in, out,
                       mae::LinearBackwardOptions{}.assigning().then(count));
  mae::linear_backward(dx_few.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), few, in, out,
                       mae::LinearBackwardOptions{}.assigning().then(count));
  CHECK(F(dx.begin(), dx.begin() + few * in) == dx_few);
  for (Index i = 0; i < rows * in; ++i) REQUIRE(seen[i] == (i < few * in ? 2 : 1));
}

TEST_CASE("linear in bf16: gemm_bf16's products (operands rounded to bf16, fp32 sums), for both thread splits") {
  using F = std::vector<float>;
  namespace K = mae::kernels;
  constexpr auto bf16 = mae::Precision::bf16;
  const Index in = 200, out = 170;
  for (const Index rows : {Index(70), Index(300)}) {  // by columns (few rows), by chunks of rows
    INFO("rows " << rows);
    const F x = random_floats(rows * in, 1), w = random_floats(out * in, 2), b = random_floats(out, 3),
            r = random_floats(rows * out, 4), dy = random_floats(rows * out, 5), dw0 = random_floats(out * in, 6),
            db0 = random_floats(out, 7);
    F y(rows * out), want_y(rows * out), y32(rows * out);
    mae::linear_forward(y.data(), x.data(), w.data(), b.data(), rows, in, out, mae::LinearForwardOptions<float>::in(bf16).plus(r.data()));
    mae::linear_forward(y32.data(), x.data(), w.data(), b.data(), rows, in, out, mae::LinearForwardOptions<float>{}.plus(r.data()));
    for (Index i = 0; i < rows; ++i)
      for (Index o = 0; o < out; ++o) want_y[i * out + o] = r[i * out + o] + b[o];
    K::gemm<K::formats::Bf16>(want_y.data(), out, {x.data(), in}, {w.data(), in, true}, rows, out, in);
    CHECK(y == want_y);
    CHECK(y != y32);
    F dx(rows * in, std::numeric_limits<float>::quiet_NaN()), dw = dw0, db = db0, want_dx(rows * in, 0.f),
                                                              want_dw = dw0, want_db = db0;
    mae::linear_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), rows, in, out,
                         mae::LinearBackwardOptions::in(bf16).assigning());
    K::gemm<K::formats::Bf16>(want_dx.data(), in, {dy.data(), out}, {w.data(), in}, rows, in, out);        // dX = dY W
    K::gemm<K::formats::Bf16>(want_dw.data(), in, {dy.data(), out, true}, {x.data(), in}, out, in, rows);  // dW += dY^T X
    for (Index i = 0; i < rows; ++i)
      for (Index o = 0; o < out; ++o) want_db[o] += dy[i * out + o];  // the bias gradient stays fp32
    CHECK(dx == want_dx);
    CHECK(dw == want_dw);
    CHECK(db == want_db);
  }
}

TEST_CASE("linear: the input kept packed by the forward gives the backward's bits, in fp32 and bf16") {
  // Both thread splits (few rows: by columns; many: by chunks of rows), odd rows (a bf16 pair
  // padded), against the backward reading x itself; a kept input of another shape or
  // precision, or none, is refused.
  using F = std::vector<float>;
  const Index in = 200, out = 170;
  for (const auto precision : {mae::Precision::fp32, mae::Precision::bf16})
    for (const Index rows : {Index(71), Index(301), Index(1100)}) {
      INFO("rows " << rows << " bf16 " << (precision == mae::Precision::bf16));
      const F x = random_floats(rows * in, 1), w = random_floats(out * in, 2), b = random_floats(out, 3),
              dy = random_floats(rows * out, 5), dw0 = random_floats(out * in, 6), db0 = random_floats(out, 7);
      F y(rows * out), y_kept(rows * out), dx(rows * in), dx_kept(rows * in), dw = dw0, db = db0, dw_kept = dw0,
                                                                              db_kept = db0;
      mae::KeptInput<float> kept;
      const auto fwd = mae::LinearForwardOptions<float>::in(precision);
      mae::linear_forward(y.data(), x.data(), w.data(), b.data(), rows, in, out, fwd);
      mae::linear_forward(y_kept.data(), x.data(), w.data(), b.data(), rows, in, out, fwd.keeping(kept));
      CHECK(y_kept == y);
      const auto bwd = mae::LinearBackwardOptions::in(precision).assigning();
      mae::linear_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), rows, in, out, bwd);
      mae::linear_backward(dx_kept.data(), dw_kept.data(), db_kept.data(), dy.data(), kept, w.data(), rows, in, out,
                           bwd);
      CHECK(dx_kept == dx);
      CHECK(dw_kept == dw);
      CHECK(db_kept == db);
      CHECK(dw != dw0);
      const auto other = mae::LinearBackwardOptions::in(precision == mae::Precision::bf16 ? mae::Precision::fp32
                                                                                          : mae::Precision::bf16);
      CHECK_THROWS_WITH_AS(mae::linear_backward(dx_kept.data(), dw_kept.data(), db_kept.data(), dy.data(), kept,
                                                w.data(), rows, in, out, other),
                           doctest::Contains("kept by the forward"), mae::Error);
      CHECK_THROWS_AS(mae::linear_backward(dx_kept.data(), dw_kept.data(), db_kept.data(), dy.data(), kept, w.data(),
                                           rows - 1, in, out, bwd),
                      mae::Error);
    }
  mae::KeptInput<float> none;
  F g(10 * 4), dw(4 * 4), db(4), w(4 * 4);
  CHECK_THROWS_WITH_AS(mae::linear_backward(g.data(), dw.data(), db.data(), g.data(), none, w.data(), 10, 4, 4),
                       doctest::Contains("was the forward run"), mae::Error);
}

TEST_CASE(
    "Grad::assign on an input gradient gives the same bits as accumulating into zeros (linear, gelu, attention, "
    "block)") {
  using F = std::vector<float>;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto fresh = [](std::size_t n, float fill) { return F(n, fill); };
  {  // linear
    const Index rows = 70, in = 24, out = 40;
    F x = random_floats(rows * in, 1), w = random_floats(out * in, 2), dy = random_floats(rows * out, 3);
    F dx0 = fresh(x.size(), 0), dx1 = fresh(x.size(), nan), dw(w.size()), db(out);
    mae::linear_backward(dx0.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), rows, in, out);
    mae::linear_backward(dx1.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), rows, in, out,
                         mae::LinearBackwardOptions{}.assigning());
    CHECK(dx0 == dx1);
  }
  {  // gelu
    const Index n = 1000;
    F x = random_floats(n, 4), dy = random_floats(n, 5);
    F dx0 = fresh(n, 0), dx1 = fresh(n, nan);
    mae::gelu_backward(dx0.data(), x.data(), dy.data(), n);
    mae::gelu_backward(dx1.data(), x.data(), dy.data(), n, mae::Grad::assign);
    CHECK(dx0 == dx1);
  }
  {                                            // attention core
    const Index N = 3, T = 53, D = 32, H = 2;  // blocks of query rows and a partial one
    F qkv = random_floats(N * T * 3 * D, 6), dctx = random_floats(N * T * D, 7);
    F ctx(N * T * D), stats(N * H * T * mae::kAttentionStats);
    mae::attention_forward(ctx.data(), stats.data(), qkv.data(), N, T, D, H);
    F d0 = fresh(qkv.size(), 0), d1 = fresh(qkv.size(), nan);
    mae::attention_backward(d0.data(), dctx.data(), qkv.data(), stats.data(), N, T, D, H);
    mae::attention_backward(d1.data(), dctx.data(), qkv.data(), stats.data(), N, T, D, H, mae::Grad::assign);
    CHECK(d0 == d1);
  }
  {  // transformer block
    const Index N = 2, T = 5;
    const mae::BlockShape s{16, 2, 32};
    mae::TensorStore<float> params, grads;
    mae::BlockParams<float> p, g;
    params.build([&](auto&& f) { mae::visit_block(p, "", s, f); });
    grads.build([&](auto&& f) { mae::visit_block(g, "", s, f); });
    F init = random_floats(params.size(), 8);
    std::copy(init.begin(), init.end(), params.data());
    F x = random_floats(N * T * 16, 9), dy = random_floats(x.size(), 10), y(x.size());
    mae::BlockCache<float> cache;
    mae::BlockScratch<float> scratch;
    mae::block_forward(y.data(), cache, x.data(), p, N, T, s);
    F d0 = fresh(x.size(), 0), d1 = fresh(x.size(), nan);
    mae::block_backward(d0.data(), g, scratch, dy.data(), x.data(), cache, p, N, T, s);
    mae::block_backward(d1.data(), g, scratch, dy.data(), x.data(), cache, p, N, T, s, mae::Grad::assign);
    CHECK(d0 == d1);
  }
}

TEST_CASE("token embedding (cls + position table, kept patches): gradient check of patches, cls and table") {
  const Index N = 2, L = 5, K = 3, D = 4;
  const std::vector<std::int64_t> ids{4, 1, 0, 2, 3, 2, 0, 4, 1, 3};  // the first K of each row are kept
  for (const bool masked : {true, false}) {
    const Index k = masked ? K : L;
    const std::int64_t* id = masked ? ids.data() : nullptr;
    V xp = random_vector(N * k * D, 30), cls = random_vector(D, 31), pos = random_vector((1 + L) * D, 32);
    V dxp(xp.size()), dcls(D), dpos(pos.size()), x(N * (1 + k) * D);
    auto fwd = [&] {
      mae::embed_tokens_forward(x.data(), xp.data(), cls.data(), pos.data(), id, N, k, L, D);
      return x;
    };
    auto bwd = [&](const V& G) {
      mae::embed_tokens_backward(dxp.data(), dcls.data(), dpos.data(), G.data(), id, N, k, L, D);
    };
    auto rep = grad_check(fwd, bwd,
                          {{"x_patch", xp.data(), dxp.data(), N * k * D},
                           {"cls", cls.data(), dcls.data(), D},
                           {"pos", pos.data(), dpos.data(), (1 + L) * D}});
    INFO((masked ? "kept patches: " : "all patches: ") << rep.str());
    CHECK(rep.ok);
    fwd();
    CHECK(x[D] == xp[0] + pos[(1 + (masked ? 4 : 0)) * D]);  // image 0, token 1 = its first kept patch
  }
}

TEST_CASE("unshuffle with mask tokens: gradient check of the visible tokens and the mask token") {
  const Index N = 2, L = 5, K = 2, D = 3;
  const std::vector<std::int64_t> restore{2, 0, 4, 1, 3, 1, 3, 0, 4, 2};  // j < K: visible token j, else mask
  V emb = random_vector(N * (1 + K) * D, 33), mask = random_vector(D, 34), pos = random_vector((1 + L) * D, 35);
  V demb(emb.size()), dmask(D), y(N * (1 + L) * D);
  auto fwd = [&] {
    mae::unshuffle_forward(y.data(), emb.data(), mask.data(), pos.data(), restore.data(), N, K, L, D);
    return y;
  };
  auto bwd = [&](const V& G) {
    mae::unshuffle_backward(demb.data(), dmask.data(), G.data(), restore.data(), N, K, L, D);
  };
  auto rep = grad_check(
      fwd, bwd, {{"emb", emb.data(), demb.data(), N * (1 + K) * D}, {"mask_token", mask.data(), dmask.data(), D}});
  INFO(rep.str());
  CHECK(rep.ok);
  fwd();
  CHECK(y[2 * D] == emb[(1 + 0) * D] + pos[2 * D]);  // image 0, patch 1: restore 0 -> visible token 0
  CHECK(y[1 * D] == mask[0] + pos[D]);               // image 0, patch 0: restore 2 >= K -> mask token
}

TEST_CASE("token pooling (mean of the patch tokens, cls) and dropping the cls row: gradient checks") {
  const Index N = 3, T = 5, D = 4;
  for (const mae::Pool pool : {mae::Pool::mean_patches, mae::Pool::cls}) {
    V x = random_vector(N * T * D, 36), dx(x.size()), out(N * D);
    auto fwd = [&] {
      mae::pool_tokens_forward(out.data(), x.data(), N, T, D, pool);
      return out;
    };
    auto bwd = [&](const V& G) { mae::pool_tokens_backward(dx.data(), G.data(), N, T, D, pool); };
    auto rep = grad_check(fwd, bwd, {{"x", x.data(), dx.data(), N * T * D}});
    INFO(rep.str());
    CHECK(rep.ok);
  }
  V x = random_vector(N * T * D, 37), dx(x.size()), y(N * (T - 1) * D);
  auto fwd = [&] {
    mae::drop_cls_forward(y.data(), x.data(), N, T, D);
    return y;
  };
  auto bwd = [&](const V& G) { mae::drop_cls_backward(dx.data(), G.data(), N, T, D); };
  auto rep = grad_check(fwd, bwd, {{"x", x.data(), dx.data(), N * T * D}});
  INFO(rep.str());
  CHECK(rep.ok);
}

TEST_CASE("Grad::assign on the token operations' input gradients = accumulating into zeros") {
  using F = std::vector<float>;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Index N = 2, L = 5, K = 2, D = 3;
  const std::vector<std::int64_t> restore{2, 0, 4, 1, 3, 1, 3, 0, 4, 2};
  const F dy = random_floats(N * (1 + L) * D, 38);
  F d0(N * (1 + K) * D, 0), d1(d0.size(), nan), m0(D, 0), m1(D, 0);
  mae::unshuffle_backward(d0.data(), m0.data(), dy.data(), restore.data(), N, K, L, D);
  mae::unshuffle_backward(d1.data(), m1.data(), dy.data(), restore.data(), N, K, L, D, mae::Grad::assign);
  CHECK(d0 == d1);
  F e0(N * K * D, 0), e1(e0.size(), nan), c0(D, 0), c1(D, 0);
  const F dx = random_floats(N * (1 + K) * D, 39);
  mae::embed_tokens_backward(e0.data(), c0.data(), static_cast<float*>(nullptr), dx.data(), nullptr, N, K, K, D);
  mae::embed_tokens_backward(e1.data(), c1.data(), static_cast<float*>(nullptr), dx.data(), nullptr, N, K, K, D,
                             mae::Grad::assign);
  CHECK(e0 == e1);
  F p0(N * (1 + L) * D, 0), p1(p0.size(), nan);
  const F dp = random_floats(N * L * D, 40);
  mae::drop_cls_backward(p0.data(), dp.data(), N, 1 + L, D);
  mae::drop_cls_backward(p1.data(), dp.data(), N, 1 + L, D, mae::Grad::assign);
  CHECK(p0 == p1);
}

TEST_CASE("cross-entropy with label smoothing: value and gradient") {
  const Index N = 3, K = 4;
  V z = random_vector(N * K, 41, 2.0), probs(N * K), dz(N * K);
  const std::vector<int> y{3, 0, 1};
  for (double s : {0.0, 0.1}) {
    // value against the definition written out
    double ref = 0;
    for (Index n = 0; n < N; ++n) {
      double lse = 0;
      for (Index k = 0; k < K; ++k) lse += std::exp(z[n * K + k]);
      lse = std::log(lse);
      double smooth = 0;
      for (Index k = 0; k < K; ++k) smooth += (lse - z[n * K + k]) / K;
      ref += ((1 - s) * (lse - z[n * K + y[n]]) + s * smooth) / N;
    }
    CHECK(mae::cross_entropy_forward(probs.data(), z.data(), y.data(), N, K, s) == doctest::Approx(ref).epsilon(1e-12));
    auto fwd = [&] { return V{mae::cross_entropy_forward(probs.data(), z.data(), y.data(), N, K, s)}; };
    auto bwd = [&](const V& G) { mae::cross_entropy_backward(dz.data(), probs.data(), y.data(), N, K, s, G[0]); };
    auto rep = grad_check(fwd, bwd, {{"logits", z.data(), dz.data(), N * K}});
    INFO("smoothing " << s << ": " << rep.str());
    CHECK(rep.ok);
  }
  const std::vector<int> bad{0, 4, 1};
  CHECK_THROWS_WITH_AS(mae::cross_entropy_forward(probs.data(), z.data(), bad.data(), N, K, 0.0),
                       doctest::Contains("label 4 of sample 1 is outside [0, 4)"), mae::Error);
}

TEST_CASE("soft-target cross-entropy equals timm's SoftTargetCrossEntropy, value and gradient") {
  const auto& f = mae_test::fixture_file("augment_timm");
  mae::Shape shape;
  const std::vector<double> z = f.read<double>("softce.logits", &shape), t = f.read<double>("softce.targets");
  const Index N = shape[0], K = shape[1];
  std::vector<double> probs(z.size(), -9.0), grad(z.size(), 0.25);
  const double loss = mae::soft_cross_entropy_forward(probs.data(), z.data(), t.data(), N, K);
  CHECK(loss == doctest::Approx(f.read<double>("softce.loss")[0]).epsilon(1e-13));
  mae::soft_cross_entropy_backward(grad.data(), probs.data(), t.data(), N, K, 2.0);  // accumulates
  const std::vector<double> want = f.read<double>("softce.grad");
  for (std::size_t i = 0; i < grad.size(); ++i) CHECK(grad[i] == doctest::Approx(0.25 + 2.0 * want[i]).epsilon(1e-12));
}

TEST_CASE("2-D sin-cos table: column first, blocks, cls row zero") {
  const Index D = 8, G = 3;
  V t((1 + G * G) * D);
  mae::sincos_pos_embed_2d(t.data(), D, G);
  for (Index d = 0; d < D; ++d) CHECK(t[d] == 0.0);
  // token 1 + r*G + c with r = 2, c = 1; omega = {1, 1/100}
  const double* row = t.data() + (1 + 2 * G + 1) * D;
  const double expect[8] = {std::sin(1.0), std::sin(0.01), std::cos(1.0), std::cos(0.01),
                            std::sin(2.0), std::sin(0.02), std::cos(2.0), std::cos(0.02)};
  for (Index d = 0; d < D; ++d) CHECK(row[d] == doctest::Approx(expect[d]).epsilon(1e-15));
  CHECK_THROWS_AS(mae::sincos_pos_embed_2d(t.data(), 6, 1), mae::Error);
}

TEST_CASE("interpolate_pos_embed equals the official one (torch bicubic, align_corners=False) to 1e-6") {
  // The fixture: float32 tables, interpolated by PyTorch in float64 (the exact result) and in
  // float32 (rounded at every step: up to ~1e-6 off the exact result itself).
  const mae::safetensors::File f(std::string(MAE_FIXTURE_DIR) + "/interpolate_pos_embed.safetensors");
  std::istringstream cases(f.metadata().at("cases"));
  std::string c;
  int n = 0;
  while (cases >> c) {
    Index g0 = 0, g1 = 0, d = 0;
    char comma;
    std::istringstream(c) >> g0 >> comma >> g1 >> comma >> d;
    const std::string key = std::to_string(g0) + "." + std::to_string(g1) + "." + std::to_string(d);
    std::vector<std::int64_t> s0, s1;
    const std::vector<double> src = f.read<double>("src." + key, &s0), exact = f.read<double>("dst." + key, &s1);
    const std::vector<double> torch32 = f.read<double>("dst_float32." + key);
    REQUIRE(s1 == std::vector<std::int64_t>{1, 1 + g1 * g1, d});
    std::vector<double> ours(exact.size(), -7.0);  // in double: the same arithmetic as PyTorch's float64
    mae::interpolate_pos_embed(ours.data(), g1, src.data(), g0, d);
    const std::vector<float> src_f(src.begin(), src.end());
    std::vector<float> ours_f(exact.size(), -7.0f);  // from a float32 checkpoint, as load_encoder does
    mae::interpolate_pos_embed(ours_f.data(), g1, src_f.data(), g0, d);
    double worst = 0, worst_f = 0, worst_torch32 = 0;
    for (std::size_t i = 0; i < exact.size(); ++i) {
      worst = std::max(worst, std::abs(ours[i] - exact[i]));
      worst_f = std::max(worst_f, std::abs(double(ours_f[i]) - exact[i]));
      worst_torch32 = std::max(worst_torch32, std::abs(double(ours_f[i]) - torch32[i]));
    }
    INFO(key, ": |ours - torch| in double ", worst, ", from float ", worst_f, " (torch in float32: ", worst_torch32,
         ")");
    CHECK(worst <= 1e-12);
    CHECK(worst_f <= 1e-6);
    CHECK(worst_torch32 <= 2e-6);  // both round the same exact values to float
    CHECK(ours[3] == src[3]);      // the cls row, copied
    ++n;
  }
  CHECK(n == 6);
}

TEST_CASE("patchify: (i, j, channel) order, and unpatchify is its inverse") {
  const mae::PatchShape s{3, 2, 2};  // C = 3, p = 2, G = 2, 4x4
  V img = random_vector(2 * 3 * 16, 42), x(2 * 4 * 12), back(img.size());
  mae::patchify(x.data(), img.data(), 2, s);
  // target[n, r*G + c, (i*p + j)*C + ch] = imgs[n, ch, r*p + i, c*p + j]
  const Index n = 1, r = 1, c = 0, i = 1, j = 0, ch = 2;
  CHECK(x[(n * 4 + r * 2 + c) * 12 + (i * 2 + j) * 3 + ch] == img[((n * 3 + ch) * 4 + r * 2 + i) * 4 + c * 2 + j]);
  mae::unpatchify(back.data(), x.data(), 2, s);
  CHECK(back == img);
}

TEST_CASE("random masking: ids, mask and the number kept") {
  CHECK(mae::num_visible(196, 0.75) == 49);
  CHECK(mae::num_visible(256, 0.75) == 64);
  CHECK(mae::num_visible(49, 0.75) == 12);
  CHECK(mae::num_visible(9, 0.6) == 3);  // 9 * 0.4 = 3.6000000000000005 -> 3
  CHECK_THROWS_AS(mae::num_visible(16, -0.1), mae::Error);
  const Index L = 5, K = 2;
  V noise{0.9, 0.1, 0.5, 0.3, 0.7};
  std::vector<std::int64_t> sh(L), rs(L);
  V mask(L);
  mae::random_masking_ids(sh.data(), rs.data(), mask.data(), noise.data(), 1, L, K);
  CHECK(sh == std::vector<std::int64_t>{1, 3, 2, 4, 0});  // ascending noise
  CHECK(rs == std::vector<std::int64_t>{4, 0, 2, 1, 3});
  CHECK(mask == V{1, 0, 1, 0, 1});  // patches 1 and 3 kept
}
