// What every `mae` command shares: the model types of a preset, threads, the processes line.
#pragma once

#include "../args.hpp"
#include "../data.hpp"

#include <mae/mae.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

namespace mae_tool {

inline mae::Precision precision_of(bool bf16) { return bf16 ? mae::Precision::bf16 : mae::Precision::fp32; }

inline void set_threads(const RunArgs& r) {
  if (r.threads <= 0) return;
  mae::set_num_threads(r.threads);
  const unsigned cores = std::thread::hardware_concurrency();
  if (cores > 0 && static_cast<unsigned>(r.threads) > cores)
    std::fprintf(stderr, "note: --threads %d is more than the %u cores: threads will share cores and run slower\n",
                 r.threads, cores);
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

// --global-batch G on R processes: each takes G / R images per batch (G must divide evenly);
// otherwise --batch, per process.
inline Index per_process_batch(const RunArgs& r, Index batch, const mae::DataParallel& p) {
  if (r.global_batch <= 0) return batch;
  if (r.global_batch % p.ranks != 0)
    throw mae::Error("--global-batch " + std::to_string(r.global_batch) + " does not split evenly over " +
                     std::to_string(p.ranks) + " processes: give a multiple of " + std::to_string(p.ranks));
  return r.global_batch / p.ranks;
}

// Where a command reports what it wrote: standard error when its --out is "-" (the output
// itself goes to standard output), standard output otherwise; and how it names the output.
inline std::FILE* report_stream(const std::string& out) { return out == "-" ? stderr : stdout; }
inline const char* output_name(const std::string& out) { return out == "-" ? "standard output" : out.c_str(); }

// A training command's --out, claimed before anything is read (mae::RunDirectory: a lock,
// and no other run's files replaced). Under mpirun the first process claims it for all.
// resumable: the command takes --resume (pretrain, finetune; not probe).
inline std::unique_ptr<mae::RunDirectory> claim_run_directory(const std::string& out, const std::string& resume,
                                                              bool overwrite, bool first, bool resumable = true) {
  if (overwrite && !resume.empty())
    throw mae::Error("--overwrite replaces a run, --resume continues one: give one of them");
  if (!first) return nullptr;
  using Mode = mae::RunDirectory::Mode;
  const Mode mode = !resume.empty() ? Mode::resume : overwrite ? Mode::overwrite : Mode::fresh;
  return std::make_unique<mae::RunDirectory>(
      out, mode, resume,
      (resumable ? "give --resume " + out + "/checkpoint.safetensors to continue it, --overwrite to replace it"
                 : std::string("give --overwrite to replace it")) +
          ", or another --out");
}

// After a stop request (SIGTERM, SIGINT, SIGUSR1 on any process): what happened, and the exit
// status that says "stopped, resumable" (mae::kExitStopped).
inline int report_stop(int signal, mae::Index step, const std::string& checkpoint, bool first) {
  if (first) {
    const std::string why = signal > 0
                                ? std::string("signal ") + std::to_string(signal) + " (" + strsignal(signal) + ")"
                                : std::string("a signal to another process");
    std::printf("stopped by %s after step %lld: checkpoint %s; continue with --resume auto (or --resume %s)\n",
                why.c_str(), static_cast<long long>(step), checkpoint.c_str(), checkpoint.c_str());
    std::fflush(stdout);
  }
  return mae::kExitStopped;
}

// --checkpoint, --pool, --block as the library's FeatureExtractor takes them.
template <class Cfg>
mae::FeatureExtractor<Cfg> feature_extractor(const FeatureArgs& f, std::uint64_t seed) {
  mae::FeatureOptions o;
  o.pool = f.pool == "avg"      ? mae::FeatureOptions::Pool::mean
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
