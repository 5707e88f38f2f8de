// mae/core/rng.hpp — the library's random numbers: seeded, portable, thread-count independent.
//
// std::mt19937_64 is fully specified by the standard; the conversions to uniform and normal
// numbers are written here (the standard distributions are implementation-defined), so a
// seed gives the same numbers with every compiler and every thread count.
#ifndef MAE_CORE_RNG_HPP
#define MAE_CORE_RNG_HPP

#include "common.hpp"

#include <cmath>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>

namespace mae {

class Rng {
 public:
  explicit Rng(std::uint64_t seed = 0) : gen_(seed) {}
  // uniform in [0, 1) with 53 random bits
  double uniform() { return static_cast<double>(gen_() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // standard normal (Box-Muller, one value per call: simple and stateless)
  double normal() {
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586476925 * u2);
  }
  std::uint64_t next_u64() { return gen_(); }

  // The full generator state as text (for checkpoints) and back.
  std::string state() const {
    std::ostringstream os;
    os << gen_;
    return os.str();
  }
  void set_state(const std::string& s) {
    std::istringstream is(s);
    std::mt19937_64 g;
    is >> g;
    if (is.fail()) throw Error("corrupt random generator state");
    gen_ = g;
  }

 private:
  std::mt19937_64 gen_;
};

// splitmix64: decorrelated seeds from (seed, a, b)
inline std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t a, std::uint64_t b = 0) {
  auto mix = [](std::uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  return mix(mix(mix(seed) ^ a) ^ b);
}

}  // namespace mae

#endif  // MAE_CORE_RNG_HPP
