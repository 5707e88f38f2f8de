// What every `mae` command shares: the model types of a preset, threads, the processes line.
#pragma once

#include "../args.hpp"
#include "../data.hpp"

#include <mae/mae.hpp>

#include <cstdlib>
#include <string>

namespace mae_tool {

inline mae::Precision precision_of(bool bf16) { return bf16 ? mae::Precision::bf16 : mae::Precision::fp32; }

inline void set_threads(const RunArgs& r) {
  if (r.threads > 0) mae::set_num_threads(r.threads);
}

// "2 threads", or "4 processes x 2 threads each" under mpirun, and how idle threads wait
// ("GOMP_SPINCOUNT=1000", the program's default, or the user's OMP_WAIT_POLICY)
inline std::string processes(const mae::DataParallel& p) {
  const std::string threads = std::to_string(mae::max_threads()) + (mae::max_threads() == 1 ? " thread" : " threads");
  std::string s = p.ranks > 1 ? std::to_string(p.ranks) + " processes x " + threads + " each" : threads;
  for (const char* v : {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"})
    if (const char* e = std::getenv(v)) s += std::string(", ") + v + "=" + e;
  return s;
}

// --checkpoint, --pool, --block as the library's FeatureExtractor takes them.
template <class Cfg>
mae::FeatureExtractor<Cfg> feature_extractor(const FeatureArgs& f, std::uint64_t seed) {
  mae::FeatureOptions o;
  o.pool = f.pool == "avg" ? mae::FeatureOptions::Pool::mean
           : f.pool == "tokens" ? mae::FeatureOptions::Pool::tokens
                                : mae::FeatureOptions::Pool::cls;
  o.block = f.block;
  return mae::FeatureExtractor<Cfg>(f.checkpoint, o, seed);
}

// The image function of the library's evaluation loops: the evaluation transform.
inline auto evaluation_images(const mae::BatchLoader& loader, double crop_pct) {
  return [&loader, crop_pct](Index i, float* dst) { loader.evaluation(i, dst, crop_pct); };
}

}  // namespace mae_tool
