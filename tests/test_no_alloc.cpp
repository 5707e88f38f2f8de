// A steady-state training step allocates nothing on the heap: forward, backward and the
// optimizer step of the MAE and of the classifier, with the heap allocator of the whole
// process interposed and counted. (Its own executable: it replaces malloc for the process.)
#include <mae/mae.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <vector>

using mae::Index;

namespace {
std::atomic<long> g_allocations{0};
std::atomic<bool> g_counting{false};
}  // namespace

// Interpose glibc's allocator: operator new, Eigen's aligned_malloc and the C library all
// end up here, so every heap allocation of the process is counted while g_counting is set.
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void* malloc(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t s) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_calloc(n, s);
}
void* realloc(void* p, std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_realloc(p, n);
}
int posix_memalign(void** out, std::size_t align, std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  *out = __libc_memalign(align, n);
  return *out ? 0 : 12;
}
}

namespace {
// Allocations made by f(), after one warm-up call (buffers grow to their size on first use).
template <class F>
long allocations_in_steady_state(F&& f) {
  f();
  g_allocations = 0;
  g_counting = true;
  f();
  f();
  g_counting = false;
  return g_allocations.load();
}

template <class M>
long mae_step_allocations(Index N, mae::Precision precision = mae::Precision::fp32) {
  typename M::Options o;
  o.precision = precision;
  M model(o);
  mae::AdamW<float> opt(model.parameters(), mae::AdamWOptions{});
  const Index S = M::Config::img_size, C = M::Config::in_chans;
  std::vector<float> img(static_cast<std::size_t>(N * C * S * S));
  for (std::size_t i = 0; i < img.size(); ++i) img[i] = static_cast<float>(i % 97) / 97.0f;
  const auto batch = mae::images(img.data(), N, C, S, S);
  return allocations_in_steady_state([&] {
    model.forward(batch, 0.75);
    model.zero_grad();
    model.backward();
    opt.step(model.parameters(), model.gradients(), 1e-4);
  });
}
}  // namespace

TEST_CASE("the counter sees an allocation (the control)") {
  CHECK(allocations_in_steady_state([] {
          std::vector<float> v(1000, 1.0f);
          volatile float sink = v[999];
          (void)sink;
        }) == 2);
}

TEST_CASE("a steady-state MAE training step allocates nothing on the heap") {
  CHECK(mae_step_allocations<mae::mae_vit_tiny_28x28_gray>(64) == 0);
  CHECK(mae_step_allocations<mae::mae_vit_tiny_32x32_rgb>(32) == 0);
}

TEST_CASE("a steady-state bf16 MAE training step allocates nothing on the heap") {
  CHECK(mae_step_allocations<mae::mae_vit_tiny_28x28_gray>(64, mae::Precision::bf16) == 0);  // rows-chunked products
  CHECK(mae_step_allocations<mae::mae_vit_tiny_32x32_rgb>(4, mae::Precision::bf16) == 0);    // few rows: by columns
}

TEST_CASE("a steady-state fine-tuning step allocates nothing on the heap, in fp32 and bf16") {
  for (const mae::Precision precision : {mae::Precision::fp32, mae::Precision::bf16}) {
    INFO("bf16: " << (precision == mae::Precision::bf16));
    using M = mae::VisionTransformer<mae::presets::vit_tiny_32x32_rgb<float>>;
    typename M::Options o;
    o.num_classes = 10, o.drop_path = 0.1, o.label_smoothing = 0.1, o.precision = precision;
    M model(o);
    mae::AdamW<float> opt(model.parameters(), mae::AdamWOptions{});
    const Index N = 16;
    std::vector<float> img(static_cast<std::size_t>(N * 3 * 32 * 32), 0.25f);
    std::vector<int> labels(static_cast<std::size_t>(N));
    for (Index n = 0; n < N; ++n) labels[static_cast<std::size_t>(n)] = static_cast<int>(n % 10);
    const auto batch = mae::images(img.data(), N, 3, 32, 32);
    CHECK(allocations_in_steady_state([&] {
            model.forward(batch, labels.data(), /*training=*/true);
            model.zero_grad();
            model.backward();
            opt.step(model.parameters(), model.gradients(), 1e-4);
          }) == 0);
  }
}
