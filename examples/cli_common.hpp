// Command-line options the example programs share (CLI11): the optimization schedule, and
// the run's threads, seed and output.
#pragma once

#include <mae/common.hpp>

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

// --epochs --batch --blr --lr --min-lr --warmup-epochs --weight-decay, into the fields of any
// options struct that has them (TrainOptions, FinetuneOptions).
template <class Options>
inline void add_schedule_options(CLI::App& app, Options& o, const std::string& blr_help) {
  app.add_option("--epochs", o.epochs, "epochs")->check(CLI::Range(1, 1000000));
  app.add_option("--batch", o.batch_size, "images per batch")->check(CLI::Range(1, 1 << 20));
  app.add_option("--blr", o.blr, blr_help);
  app.add_option("--lr", o.lr, "absolute learning rate (overrides --blr)");
  app.add_option("--min-lr", o.min_lr, "final learning rate of the cosine schedule");
  app.add_option("--warmup-epochs", o.warmup_epochs, "linear warmup, in epochs (fractions allowed)");
  app.add_option("--weight-decay", o.weight_decay, "AdamW weight decay");
}

// --seed --threads --out --no-progress
inline void add_run_options(CLI::App& app, std::uint64_t& seed, int& threads, std::string& out, bool& progress,
                            const std::string& seed_help, const std::string& out_help) {
  app.add_option("--seed", seed, seed_help);
  app.add_option("--threads", threads, "OpenMP threads (0: OMP_NUM_THREADS or all cores)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--out", out, out_help);
  app.add_flag("!--no-progress", progress, "no progress output");
}
