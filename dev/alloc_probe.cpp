// Counts heap allocations: a steady-state training step (forward, backward, AdamW) must allocate nothing.
#include <mae/mae.hpp>
#include <mae/optim.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>

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

TEST_CASE("a steady-state training step allocates nothing on the heap") {
  using M = mae::mae_vit_tiny_28x28_gray;
  M model;
  mae::AdamW<float> opt(model.parameters(), mae::AdamWOptions{});
  std::vector<float> img(16 * 28 * 28, 0.3f);
  const auto batch = mae::images(img.data(), 16, 1, 28, 28);
  auto step = [&] {
    model.forward(batch, 0.75);
    model.zero_grad();
    model.backward();
    opt.step(model.parameters(), model.gradients(), 1e-4);
  };
  step();  // warm-up: buffers grow to their size
  g_allocations = 0;
  g_counting = true;
  step();
  step();
  g_counting = false;
  CHECK(g_allocations.load() == 0);
}
