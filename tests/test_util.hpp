// Shared test helpers: the finite-difference gradient check and tensor comparison.
#ifndef MAE_TESTS_TEST_UTIL_HPP
#define MAE_TESTS_TEST_UTIL_HPP

#include <mae/mae.hpp>

#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace mae_test {

using mae::Index;

// One tensor to check: its values (perturbed in place) and the gradient buffer the
// backward accumulates into.
struct GradTarget {
  std::string name;
  double* x;
  double* grad;
  Index n;
};

struct GradReport {
  bool ok = true;
  std::string worst_name;
  Index worst_index = -1;
  double worst_excess = -1;  // max of |a - num| - (atol + rtol |num|); <= 0 passes
  double worst_abs = 0, analytic = 0, numeric = 0;
  Index checked = 0;
  std::string str() const {
    std::ostringstream os;
    os << (ok ? "ok" : "FAILED") << ": " << checked << " elements; worst " << worst_name << "[" << worst_index
       << "] analytic " << analytic << " numeric " << numeric << " |diff| " << worst_abs;
    return os.str();
  }
};

inline std::vector<double> random_vector(Index n, std::uint64_t seed, double scale = 1.0) {
  mae::Rng r(seed);
  std::vector<double> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = scale * r.normal();
  return v;
}

// random_vector in float (the fast paths are float code)
inline std::vector<float> random_floats(Index n, std::uint64_t seed) {
  const std::vector<double> d = random_vector(n, seed);
  return std::vector<float>(d.begin(), d.end());
}

// Checks d<f(x), G>/dx for every element of every target by central differences (double,
// one fixed step h), with a random upstream gradient G.
//   forward():  recomputes the outputs from the current targets and returns them;
//   backward(G): accumulates (+=) the analytic gradients into the targets' grad buffers.
// Gradient buffers are pre-filled with random garbage, which is subtracted afterwards: a
// backward that assigns instead of accumulating, or never writes, fails.
inline GradReport grad_check(const std::function<std::vector<double>()>& forward,
                             const std::function<void(const std::vector<double>&)>& backward,
                             const std::vector<GradTarget>& targets, double atol = 1e-6, double rtol = 1e-5,
                             double h = 1e-5) {
  const std::vector<double> out = forward();
  const std::vector<double> G = random_vector(static_cast<Index>(out.size()), 12345);
  std::vector<std::vector<double>> prefill;
  for (std::size_t t = 0; t < targets.size(); ++t) {
    prefill.push_back(random_vector(targets[t].n, 777 + t, 3.0));
    std::copy(prefill.back().begin(), prefill.back().end(), targets[t].grad);
  }
  backward(G);
  auto dot = [&G](const std::vector<double>& o) {
    double s = 0;
    for (std::size_t i = 0; i < o.size(); ++i) s += o[i] * G[i];
    return s;
  };
  GradReport rep;
  for (std::size_t t = 0; t < targets.size(); ++t) {
    const GradTarget& tg = targets[t];
    for (Index i = 0; i < tg.n; ++i) {
      const double analytic = tg.grad[i] - prefill[t][i];
      const double x0 = tg.x[i];
      tg.x[i] = x0 + h;
      const double fp = dot(forward());
      tg.x[i] = x0 - h;
      const double fm = dot(forward());
      tg.x[i] = x0;
      const double numeric = (fp - fm) / (2 * h);
      const double diff = std::abs(analytic - numeric);
      const double excess = diff - (atol + rtol * std::abs(numeric));
      ++rep.checked;
      if (excess > rep.worst_excess) {
        rep.worst_excess = excess;
        rep.worst_name = tg.name, rep.worst_index = i, rep.worst_abs = diff;
        rep.analytic = analytic, rep.numeric = numeric;
      }
      if (excess > 0) rep.ok = false;
    }
  }
  forward();  // leave the caches consistent with the unperturbed inputs
  return rep;
}

// Element-wise comparison |a - b| <= atol + rtol |b| (b is the reference).
struct CompareReport {
  Index n = 0, bad = 0;
  double max_abs = 0, max_rel = 0;
  std::string str() const {
    std::ostringstream os;
    os << n << " values, worst abs " << max_abs << ", worst rel " << max_rel << ", " << bad << " outside tolerance";
    return os.str();
  }
};

template <class A, class B>
inline CompareReport compare(const A* a, const B* b, Index n, double atol, double rtol) {
  CompareReport r;
  r.n = n;
  for (Index i = 0; i < n; ++i) {
    const double x = static_cast<double>(a[i]), y = static_cast<double>(b[i]);
    const double d = std::abs(x - y);
    if (!(d <= atol + rtol * std::abs(y))) ++r.bad;  // NaN counts as bad
    r.max_abs = std::max(r.max_abs, d);
    if (std::abs(y) > 1e-3) r.max_rel = std::max(r.max_rel, d / std::abs(y));
  }
  return r;
}

// |a - b| / |b| (Frobenius norms over n values, in double)
template <class A, class B>
inline double rel_dist(const A* a, const B* b, Index n) {
  double d = 0, r = 0;
  for (Index i = 0; i < n; ++i) {
    const double x = static_cast<double>(a[i]), y = static_cast<double>(b[i]);
    d += (x - y) * (x - y), r += y * y;
  }
  return std::sqrt(d / r);
}
template <class A, class B>
inline double rel_dist(const std::vector<A>& a, const std::vector<B>& b) {
  REQUIRE(a.size() == b.size());
  return rel_dist(a.data(), b.data(), static_cast<Index>(a.size()));
}

// A fresh scratch directory for one test: <tmp>/mae_tests_<pid>/<name>.
inline std::filesystem::path scratch_dir(const std::string& name) {
  const auto d = std::filesystem::temp_directory_path() / ("mae_tests_" + std::to_string(::getpid())) / name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}
inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}
inline void spit(const std::filesystem::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

#ifdef MAE_FIXTURE_DIR
// tests/fixtures/<name>.safetensors, opened once.
inline const mae::safetensors::File& fixture_file(const std::string& name) {
  static std::map<std::string, std::unique_ptr<mae::safetensors::File>> open;
  auto& f = open[name];
  if (!f) f = std::make_unique<mae::safetensors::File>(std::string(MAE_FIXTURE_DIR) + "/" + name + ".safetensors");
  return *f;
}
#endif

// The words of a fixture's space-separated list.
inline std::vector<std::string> words(const std::string& s) {
  std::istringstream is(s);
  std::vector<std::string> w;
  for (std::string x; is >> x;) w.push_back(x);
  return w;
}

// A backward's GradientsReady reports (params.hpp), checked against the end result: run(ready)
// zeroes the gradients and runs one backward. Every report ready(from) must find the gradients
// [from, n) already at their final values; the reports must start at the tensors `firsts`
// names, in that order (each layer reported as soon as it is done), then at 0 (all).
template <class Model, class Run>
void check_gradients_ready(Model& model, Run&& run, const std::vector<std::string>& firsts) {
  using S = std::remove_reference_t<decltype(*model.gradients().data())>;
  const auto& g = model.gradients();
  std::vector<std::pair<Index, std::vector<S>>> seen;
  run([&](Index from) { seen.emplace_back(from, std::vector<S>(g.data() + from, g.data() + g.size())); });
  REQUIRE(seen.size() == firsts.size() + 1);
  for (std::size_t r = 0; r < seen.size(); ++r) {
    const auto& [from, values] = seen[r];
    const Index expected = r < firsts.size() ? g.find(firsts[r]).offset : 0;
    INFO("report " << r << ": gradients from offset " << from << " of " << g.size() << ", expected " << expected);
    CHECK(from == expected);
    Index changed = 0;  // values that moved after the report said they were final
    for (Index i = from; i < g.size(); ++i) changed += values[static_cast<std::size_t>(i - from)] != g.data()[i];
    CHECK(changed == 0);
  }
}

}  // namespace mae_test

#endif  // MAE_TESTS_TEST_UTIL_HPP
