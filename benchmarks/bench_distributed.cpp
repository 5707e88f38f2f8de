// Data parallel over MPI (mae/distributed.hpp): the gradient allreduce and the whole
// data-parallel step. Every benchmark has a fixed iteration count, so that every rank makes
// the same collectives; rank 0 reports.
//
//   mpirun --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1 build/release/benchmarks/bench_distributed
//   mpirun --allow-run-as-root -np 1 -x OMP_NUM_THREADS=2 build/release/benchmarks/bench_distributed
//
// dp_step/<model>/global_batch:G/overlap:0|1 runs each rank's share G / R of the batch:
// forward, backward, the gradients' mean, AdamW. overlap:0 averages after backward
// (allreduce_mean); overlap:1 starts the buckets during backward (GradientMean, as the
// trainers do) and "wait ms" is what is left to wait for after backward. The two commands
// above compare 2 ranks x 1 thread with 1 rank x 2 threads at the same global batch. allreduce/<model> is
// allreduce_mean alone on that model's gradient store: "GB/s" is the store's size over the time, "bus GB/s" the ring
// algorithm's traffic 2 (R - 1) / R x size over the time (NCCL's convention).
#include <benchmark/benchmark.h>
#include <mae/training/distributed.hpp>
#include <mae/mae.hpp>

#include <chrono>
#include <cstdio>
#include <vector>

using mae::Index;

namespace {
int g_rank = 0, g_size = 1;

template <class Cfg>
Index gradient_count() {
  mae::MaskedAutoencoder<Cfg> m;
  return m.gradients().size();
}

template <class Cfg>
void BM_allreduce(benchmark::State& st) {
  const Index n = gradient_count<Cfg>();
  std::vector<float> g(static_cast<std::size_t>(n), 1.0f);
  mae::mpi::allreduce_mean(g.data(), n, MPI_COMM_WORLD);  // warm: buffers, connections
  for (auto _ : st) mae::mpi::allreduce_mean(g.data(), n, MPI_COMM_WORLD);
  const double bytes = 4.0 * static_cast<double>(n);
  st.counters["MB"] = bytes / 1e6;
  st.counters["GB/s"] = benchmark::Counter(bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["bus GB/s"] =
      benchmark::Counter(2.0 * (g_size - 1) / g_size * bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

template <class Cfg>
void BM_dp_step(benchmark::State& st) {
  using M = mae::MaskedAutoencoder<Cfg>;
  const Index G = st.range(0), N = G / g_size, S = Cfg::img_size, C = Cfg::in_chans;
  if (N * g_size != G) {
    st.SkipWithError("the global batch must be a multiple of the rank count");
    return;
  }
  M model;
  mae::AdamW<float> opt(model.parameters(), mae::AdamWOptions{});
  std::vector<float> imgs(static_cast<std::size_t>(N * C * S * S));
  mae::Rng r(7 + static_cast<std::uint64_t>(g_rank));
  for (auto& v : imgs) v = static_cast<float>(r.normal());
  const auto batch = mae::images(imgs.data(), N, C, S, S);
  auto& g = model.gradients();
  const bool overlap = st.range(1) != 0 && g_size > 1;
  mae::mpi::GradientMean reducer(MPI_COMM_WORLD);
  const mae::GradientsReady ready = [&](Index from) { reducer.ready(g.data(), g.size(), from); };
  double wait_s = 0;
  const auto step = [&] {
    benchmark::DoNotOptimize(model.forward(batch, 0.75));
    model.zero_grad();
    model.backward(1.0f, overlap ? ready : mae::GradientsReady{});
    const auto t0 = std::chrono::steady_clock::now();
    if (overlap)
      reducer.mean(g.data(), g.size());
    else if (g_size > 1)
      mae::mpi::allreduce_mean(g.data(), g.size(), MPI_COMM_WORLD);
    wait_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    opt.step(model.parameters(), g, 1e-4);
  };
  step();  // warm
  wait_s = 0;
  for (auto _ : st) step();
  st.counters["images/s"] = benchmark::Counter(static_cast<double>(G), benchmark::Counter::kIsIterationInvariantRate);
  st.counters["wait ms"] = 1e3 * wait_s / static_cast<double>(st.iterations());
}

#define MAE_DP_BENCH(NAME, CFG, BATCH, STEPS, REDUCES) \
  BENCHMARK_TEMPLATE(BM_dp_step, CFG)                  \
      ->Name("dp_step/" NAME)                          \
      ->ArgNames({"global_batch", "overlap"})          \
      ->Args({BATCH, 0})                               \
      ->Args({BATCH, 1})                               \
      ->Iterations(STEPS)                              \
      ->UseRealTime()                                  \
      ->Unit(benchmark::kMillisecond);                 \
  BENCHMARK_TEMPLATE(BM_allreduce, CFG)                \
      ->Name("allreduce/" NAME)                        \
      ->Iterations(REDUCES)                            \
      ->UseRealTime()                                  \
      ->Unit(benchmark::kMillisecond)

MAE_DP_BENCH("tiny_28x28_gray", mae::presets::vit_tiny_28x28_gray<float>, 64, 60, 200);
MAE_DP_BENCH("tiny_32x32_rgb", mae::presets::vit_tiny_32x32_rgb<float>, 32, 50, 200);
MAE_DP_BENCH("tiny_patch16_224", mae::presets::vit_tiny_patch16_224<float>, 8, 50, 200);
MAE_DP_BENCH("vit_base_patch16_dec512d8b", mae::presets::vit_base_patch16_dec512d8b<float>, 2, 12, 20);
}  // namespace

int main(int argc, char** argv) {
  mae::mpi::Session mpi(argc, argv);
  g_rank = mpi.rank(), g_size = mpi.size();
  return mae::mpi::run_or_abort([&] {
    benchmark::Initialize(&argc, argv);
    if (g_rank == 0) {
      std::fprintf(stderr, "ranks: %d, OpenMP threads per rank: %d\n", g_size, mae::max_threads());
      benchmark::RunSpecifiedBenchmarks();
    } else {
      benchmark::BenchmarkReporter* none = nullptr;
      struct Quiet : benchmark::BenchmarkReporter {
        bool ReportContext(const Context&) override { return true; }
        void ReportRuns(const std::vector<Run>&) override {}
      } quiet;
      none = &quiet;
      benchmark::RunSpecifiedBenchmarks(none);
    }
    benchmark::Shutdown();
    return 0;
  });
}
