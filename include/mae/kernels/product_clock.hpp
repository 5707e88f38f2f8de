// mae/kernels/product_clock.hpp — how much of a step the linear layers' products take: a
// build-time switch for benchmarks (bench_mae's `products` binary), off by default.
//
// With MAE_PRODUCT_CLOCK defined, every call of gemm.hpp's driver (a thread's share of one
// linear layer product: its register tiles and the packing of its operands) adds the ticks
// it took to its thread's count; product_clock::ticks() is the sum over the threads,
// product_clock::now() the clock itself. The share of a step outside those products is then
//   1 - ticks() / (threads x (now() at the end - now() at the start)):
// LayerNorm, attention's core (its small products included), GELU where it is not fused,
// AdamW, patchify, loss, masking, and the threads' waits at barriers.
// The clock is read twice per call, a few hundred calls per step. Finer (per register tile)
// was tried: on this project's virtual machines reading the time-stamp counter costs about a
// microsecond (the hypervisor traps it), which doubled an fp32 step.
#ifndef MAE_KERNELS_PRODUCT_CLOCK_HPP
#define MAE_KERNELS_PRODUCT_CLOCK_HPP

#ifdef MAE_PRODUCT_CLOCK

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

namespace mae::kernels::product_clock {

inline std::uint64_t now() {
#if defined(__x86_64__) || defined(__i386__)
  return __rdtsc();
#else
  return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
#endif
}

namespace detail {
struct alignas(64) Count {
  std::uint64_t ticks = 0;
};
struct Registry {
  std::mutex mutex;
  std::vector<std::unique_ptr<Count>> counts;  // one per thread that ever ran a product
};
inline Registry& registry() {
  static Registry r;
  return r;
}
inline Count& mine() {
  thread_local Count* c = [] {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    r.counts.push_back(std::make_unique<Count>());
    return r.counts.back().get();
  }();
  return *c;
}
}  // namespace detail

// Ticks spent in products by all threads since the last reset(). Call between parallel regions.
inline std::uint64_t ticks() {
  detail::Registry& r = detail::registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::uint64_t sum = 0;
  for (const auto& c : r.counts) sum += c->ticks;
  return sum;
}
inline void reset() {
  detail::Registry& r = detail::registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (const auto& c : r.counts) c->ticks = 0;
}

// Adds the ticks of its lifetime to the calling thread's count.
struct Scope {
  std::uint64_t start = now();
  ~Scope() { detail::mine().ticks += now() - start; }
};

}  // namespace mae::kernels::product_clock

#define MAE_PRODUCT_SCOPE const ::mae::kernels::product_clock::Scope mae_product_scope_
#else
#define MAE_PRODUCT_SCOPE
#endif

#endif  // MAE_KERNELS_PRODUCT_CLOCK_HPP
