// Google Benchmark suite: the CPU's peak (a large GEMM and a pure FMA loop), every layer's
// forward and backward, and forward / backward / full training step (with AdamW) of whole
// models. Counters: images/s and GFLOP/s from the analytic count in flops.hpp; real time
// (OpenMP threads do the work).
//
//   ./build/release/benchmarks/bench_mae                       # everything
//   ./build/release/benchmarks/bench_mae --benchmark_filter=step
//
// bench_mae_products is this file built with MAE_PRODUCT_CLOCK (kernels/product_clock.hpp):
// each model benchmark also reports outside_products_%, the share of the threads' time spent
// outside the linear layers' products (LayerNorm, attention's core, GELU, AdamW, barrier
// waits, ...):
//   ./build/release/benchmarks/bench_mae_products --benchmark_filter='^step'
#include "flops.hpp"

#include <mae/mae.hpp>
#include <mae/training/optim.hpp>

#include <benchmark/benchmark.h>

#include <sys/resource.h>

#include <immintrin.h>
#include <omp.h>

#include <vector>

namespace {
using mae::Index;

// --- peak probes ----------------------------------------------------------------------------
void BM_peak_gemm(benchmark::State& st) {
  const Index n = st.range(0);
  Eigen::MatrixXf a = Eigen::MatrixXf::Random(n, n), b = Eigen::MatrixXf::Random(n, n), c(n, n);
  for (auto _ : st) {
    c.noalias() = a * b;  // Eigen threads a large product itself (OpenMP)
    benchmark::DoNotOptimize(c.data());
  }
  st.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_peak_gemm)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();

// Independent FMA chains on every thread: the arithmetic peak.
void BM_peak_fma(benchmark::State& st) {
  const long iters = 1 << 22;
  for (auto _ : st) {
    float sink = 0;
#pragma omp parallel reduction(+ : sink)
    {
#if defined(__AVX512F__)
      __m512 acc[12];
      for (auto& a : acc) a = _mm512_set1_ps(1.0f);
      const __m512 m = _mm512_set1_ps(0.999999f), x = _mm512_set1_ps(1e-7f);
      for (long i = 0; i < iters; ++i)
        for (auto& a : acc) a = _mm512_fmadd_ps(a, m, x);
      float t[16];  // one lane each keeps the chains live (_mm512_reduce_add_ps draws GCC 12's false -Wuninitialized)
      for (auto& a : acc) _mm512_storeu_ps(t, a), sink += t[0];
#elif defined(__AVX2__)
      __m256 acc[12];
      for (auto& a : acc) a = _mm256_set1_ps(1.0f);
      const __m256 m = _mm256_set1_ps(0.999999f), x = _mm256_set1_ps(1e-7f);
      for (long i = 0; i < iters; ++i)
        for (auto& a : acc) a = _mm256_fmadd_ps(a, m, x);
      float t[8];
      for (auto& a : acc) _mm256_storeu_ps(t, a), sink += t[0];
#endif
    }
    benchmark::DoNotOptimize(sink);
  }
#if defined(__AVX512F__)
  const double lanes = 16;
#else
  const double lanes = 8;
#endif
  st.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * lanes * 12 * iters * mae::max_threads(), benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1000);
}
BENCHMARK(BM_peak_fma)->Unit(benchmark::kMillisecond)->UseRealTime();

// --- layers (the toy 28x28 preset's encoder shapes: batch 64, 13 tokens, width 192) --------
constexpr Index kRows = 64 * 13, kD = 192, kHidden = 768, kHeads = 3, kN = 64, kT = 13;

std::vector<float> randv(Index n, std::uint64_t seed) {
  mae::Rng r(seed);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = static_cast<float>(r.normal() * 0.1);
  return v;
}
void set_flops(benchmark::State& st, double flops) {
  st.counters["GFLOP/s"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

// The same product with the library's own GEMM (mae/kernels/gemm.hpp), run as the linear layers run it:
// a bias-free linear_forward, C = A W^T, W packed once by all threads, chunks of rows of C
// split between the threads.
template <mae::Precision P>
void BM_peak_gemm_mae(benchmark::State& st) {
  const Index n = st.range(0);
  auto a = randv(n * n, 1), w = randv(n * n, 2), c = randv(n * n, 3);
  for (auto _ : st) {
    mae::linear_forward<float>(c.data(), a.data(), w.data(), nullptr, n, n, n, mae::LinearForwardOptions<float>::in(P));
    benchmark::DoNotOptimize(c.data());
  }
  st.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
// fp32, and bf16 operands with fp32 sums (kernels/format_bf16.hpp: AVX512-BF16 where compiled
// for it, else the portable tile)
BENCHMARK_TEMPLATE(BM_peak_gemm_mae, mae::Precision::fp32)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_peak_gemm_mae, mae::Precision::bf16)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();

// Linear at (rows, in, out): the 32x32 encoder's qkv and fc2, the toy encoder's fc1, the 32x32 decoder's qkv and fc2.
template <mae::Precision P>
void BM_linear_forward(benchmark::State& st) {
  const Index rows = st.range(0), in = st.range(1), out = st.range(2);
  auto x = randv(rows * in, 1), w = randv(out * in, 2), b = randv(out, 3), y = randv(rows * out, 4);
  for (auto _ : st) mae::linear_forward(y.data(), x.data(), w.data(), b.data(), rows, in, out, mae::LinearForwardOptions<float>::in(P));
  set_flops(st, 2.0 * rows * in * out);
}
template <mae::Precision P>
void BM_linear_backward(benchmark::State& st) {
  const Index rows = st.range(0), in = st.range(1), out = st.range(2);
  auto x = randv(rows * in, 1), w = randv(out * in, 2), dy = randv(rows * out, 4), dx = x, dw = w, db = randv(out, 5);
  for (auto _ : st)
    mae::linear_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), rows, in, out,
                         mae::LinearBackwardOptions::in(P));
  set_flops(st, 4.0 * rows * in * out);
}
void BM_layernorm_forward(benchmark::State& st) {
  auto x = randv(kRows * kD, 1), w = randv(kD, 2), b = randv(kD, 3), y = x, m = randv(kRows, 4), r = m;
  for (auto _ : st) mae::layernorm_forward(y.data(), m.data(), r.data(), x.data(), w.data(), b.data(), kRows, kD);
}
void BM_layernorm_backward(benchmark::State& st) {
  auto x = randv(kRows * kD, 1), w = randv(kD, 2), b = randv(kD, 3), y = x, m = randv(kRows, 4), r = m, dx = x, dw = w,
       db = b;
  mae::layernorm_forward(y.data(), m.data(), r.data(), x.data(), w.data(), b.data(), kRows, kD);
  for (auto _ : st)
    mae::layernorm_backward(dx.data(), dw.data(), db.data(), y.data(), x.data(), w.data(), m.data(), r.data(), kRows,
                            kD);
}
// Attention core at (N, T, D, H): the toy encoder, the decoders of the 32x32, 224 and base
// models. As a block runs it: the probabilities kept by the forward where
// keeps_attention_probabilities says so (short T), else recomputed by the backward.
template <mae::Precision P>
void BM_attention_forward(benchmark::State& st) {
  const Index N = st.range(0), T = st.range(1), D = st.range(2), H = st.range(3);
  const bool keep = mae::keeps_attention_probabilities(T, D, H);
  auto qkv = randv(N * T * 3 * D, 1), ctx = randv(N * T * D, 2), stats = randv(N * H * T * mae::kAttentionStats, 3),
       att = randv(keep ? N * H * T * T : 0, 4);
  for (auto _ : st)
    mae::attention_forward(ctx.data(), stats.data(), qkv.data(), N, T, D, H, P, keep ? att.data() : nullptr);
  set_flops(st, 4.0 * N * T * T * D);
  st.counters["kept"] = keep;
}
template <mae::Precision P>
void BM_attention_backward(benchmark::State& st) {
  const Index N = st.range(0), T = st.range(1), D = st.range(2), H = st.range(3);
  const bool keep = mae::keeps_attention_probabilities(T, D, H);
  auto qkv = randv(N * T * 3 * D, 1), ctx = randv(N * T * D, 2), stats = randv(N * H * T * mae::kAttentionStats, 3),
       att = randv(keep ? N * H * T * T : 0, 4), dqkv = qkv;
  mae::attention_forward(ctx.data(), stats.data(), qkv.data(), N, T, D, H, P, keep ? att.data() : nullptr);
  for (auto _ : st)
    mae::attention_backward(dqkv.data(), ctx.data(), qkv.data(), stats.data(), N, T, D, H, mae::Grad::accumulate, P,
                            keep ? att.data() : nullptr);
  set_flops(st, 8.0 * N * T * T * D);  // the gradient's products; a recomputed q k^T is not counted
  st.counters["kept"] = keep;
}
void BM_mlp_gelu_forward(benchmark::State& st) {
  auto x = randv(kRows * kHidden, 1), y = x;
  for (auto _ : st) mae::gelu_forward(y.data(), x.data(), kRows * kHidden);
}
void BM_mlp_gelu_backward(benchmark::State& st) {
  auto x = randv(kRows * kHidden, 1), dy = x, dx = x;
  for (auto _ : st) mae::gelu_backward(dx.data(), x.data(), dy.data(), kRows * kHidden);
}
struct BlockBench {
  mae::BlockShape s{kD, kHeads, kHidden};
  mae::TensorStore<float> p, g;
  mae::BlockParams<float> bp, bg;
  mae::BlockCache<float> cache;
  mae::BlockScratch<float> scratch;
  std::vector<float> x = randv(kRows * kD, 1), y = x, dx = x, dy = randv(kRows * kD, 2);
  BlockBench() {
    p.build([&](auto&& f) { mae::visit_block(bp, "", s, f); });
    g.build([&](auto&& f) { mae::visit_block(bg, "", s, f); });
    auto init = randv(p.size(), 3);
    std::copy(init.begin(), init.end(), p.data());
  }
};
void BM_block_forward(benchmark::State& st) {
  BlockBench b;
  for (auto _ : st) mae::block_forward(b.y.data(), b.cache, b.x.data(), b.bp, kN, kT, b.s);
  set_flops(st, kN * mae_bench::block_flops(kT, kD, 4));
}
void BM_block_backward(benchmark::State& st) {
  BlockBench b;
  mae::block_forward(b.y.data(), b.cache, b.x.data(), b.bp, kN, kT, b.s);
  for (auto _ : st)
    mae::block_backward(b.dx.data(), b.bg, b.scratch, b.dy.data(), b.x.data(), b.cache, b.bp, kN, kT, b.s);
  set_flops(st, 2 * kN * mae_bench::block_flops(kT, kD, 4));
}
// Linear layers in fp32 and in bf16 at the same shapes.
#define MAE_LINEAR_SHAPES(B)       \
  B->Args({544, 192, 576})         \
      ->Args({544, 768, 192})      \
      ->Args({kRows, kD, kHidden}) \
      ->Args({2080, 128, 384})     \
      ->Args({2080, 512, 128})     \
      ->UseRealTime()
MAE_LINEAR_SHAPES(BENCHMARK_TEMPLATE(BM_linear_forward, mae::Precision::fp32));
MAE_LINEAR_SHAPES(BENCHMARK_TEMPLATE(BM_linear_backward, mae::Precision::fp32));
MAE_LINEAR_SHAPES(BENCHMARK_TEMPLATE(BM_linear_forward, mae::Precision::bf16));
MAE_LINEAR_SHAPES(BENCHMARK_TEMPLATE(BM_linear_backward, mae::Precision::bf16));
BENCHMARK(BM_layernorm_forward)->UseRealTime();
BENCHMARK(BM_layernorm_backward)->UseRealTime();
// Attention in fp32 and in bf16 (the four products' operands rounded) at the same shapes.
#define MAE_ATTENTION_SHAPES(B) \
  B->Args({kN, kT, kD, kHeads}) \
      ->Args({32, 17, 192, 3})  \
      ->Args({32, 65, 128, 4})  \
      ->Args({8, 197, 128, 4})  \
      ->Args({2, 197, 512, 16}) \
      ->UseRealTime()
MAE_ATTENTION_SHAPES(BENCHMARK_TEMPLATE(BM_attention_forward, mae::Precision::fp32));
MAE_ATTENTION_SHAPES(BENCHMARK_TEMPLATE(BM_attention_backward, mae::Precision::fp32));
MAE_ATTENTION_SHAPES(BENCHMARK_TEMPLATE(BM_attention_forward, mae::Precision::bf16));
MAE_ATTENTION_SHAPES(BENCHMARK_TEMPLATE(BM_attention_backward, mae::Precision::bf16));
BENCHMARK(BM_mlp_gelu_forward)->UseRealTime();
BENCHMARK(BM_mlp_gelu_backward)->UseRealTime();
BENCHMARK(BM_block_forward)->UseRealTime();
BENCHMARK(BM_block_backward)->UseRealTime();

// --- whole models ---------------------------------------------------------------------------
enum Phase { kForward, kBackward, kStep };

template <class Cfg, mae::Precision P>
void BM_model(benchmark::State& st) {
  using M = mae::MaskedAutoencoder<Cfg>;
  const Index N = st.range(0);
  const auto phase = static_cast<Phase>(st.range(1));
  M model(typename M::Options{false, 0, P});
  mae::AdamW<float> opt(model.parameters(), mae::AdamWOptions{});
  const Index S = Cfg::img_size;
  auto imgs = randv(N * Cfg::in_chans * S * S, 7);
  const auto batch = mae::images(imgs.data(), N, Cfg::in_chans, S, S);
  model.forward(batch, 0.75);
  model.backward();  // warm: every buffer allocated
#ifdef MAE_PRODUCT_CLOCK
  namespace clock = mae::kernels::product_clock;
  clock::reset();
  const std::uint64_t start = clock::now();
#endif
  for (auto _ : st) {
    if (phase == kForward) {
      benchmark::DoNotOptimize(model.forward(batch, 0.75));
    } else if (phase == kBackward) {
      model.backward();
    } else {
      benchmark::DoNotOptimize(model.forward(batch, 0.75));
      model.zero_grad();
      model.backward();
      opt.step(model.parameters(), model.gradients(), 1e-4);
    }
  }
#ifdef MAE_PRODUCT_CLOCK
  // bench_mae_products: the share of the threads' time outside the linear layers' products
  const double threads_ticks = static_cast<double>(clock::now() - start) * omp_get_max_threads();
  st.counters["outside_products_%"] = 100.0 * (1.0 - static_cast<double>(clock::ticks()) / threads_ticks);
#endif
  const double f = mae_bench::forward_flops_per_image<Cfg>() * (phase == kForward ? 1 : phase == kBackward ? 2 : 3);
  set_flops(st, f * static_cast<double>(N));
  st.counters["images/s"] = benchmark::Counter(static_cast<double>(N), benchmark::Counter::kIsIterationInvariantRate);
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  st.counters["maxrss_MiB"] = static_cast<double>(ru.ru_maxrss) / 1024.0;
}

// Names: forward/<model>, backward/<model>, step/<model> in fp32; bf16 (mixed precision):
// forward_bf16/<model>, ...
#define MAE_MODEL_PHASE(PHASE, ENUM, NAME, CFG, BATCH, P) \
  BENCHMARK_TEMPLATE(BM_model, CFG, P)                    \
      ->Name(PHASE "/" NAME)                              \
      ->Args({BATCH, ENUM})                               \
      ->UseRealTime()                                     \
      ->Unit(benchmark::kMillisecond)
#define MAE_MODEL_BENCH(NAME, CFG, BATCH)                                              \
  MAE_MODEL_PHASE("forward", kForward, NAME, CFG, BATCH, mae::Precision::fp32);        \
  MAE_MODEL_PHASE("backward", kBackward, NAME, CFG, BATCH, mae::Precision::fp32);      \
  MAE_MODEL_PHASE("step", kStep, NAME, CFG, BATCH, mae::Precision::fp32);              \
  MAE_MODEL_PHASE("forward_bf16", kForward, NAME, CFG, BATCH, mae::Precision::bf16);   \
  MAE_MODEL_PHASE("backward_bf16", kBackward, NAME, CFG, BATCH, mae::Precision::bf16); \
  MAE_MODEL_PHASE("step_bf16", kStep, NAME, CFG, BATCH, mae::Precision::bf16)

MAE_MODEL_BENCH("tiny_28x28_gray/batch:64", mae::presets::vit_tiny_28x28_gray<float>, 64);
MAE_MODEL_BENCH("tiny_32x32_rgb/batch:32", mae::presets::vit_tiny_32x32_rgb<float>, 32);
MAE_MODEL_BENCH("tiny_patch16_224/batch:8", mae::presets::vit_tiny_patch16_224<float>, 8);
MAE_MODEL_BENCH("vit_base_patch16_dec512d8b/batch:2", mae::presets::vit_base_patch16_dec512d8b<float>, 2);

}  // namespace

BENCHMARK_MAIN();
