// mae/training/training_loop.hpp — the loop that pretraining (pretrain.hpp) and fine-tuning
// (finetune.hpp) share: steps in epochs, the stop after max_steps, a progress bar or periodic
// lines, the CSV log (one line per step), the stop with a clear message on a non-finite loss,
// and the epoch-end hook where a trainer writes its atomic checkpoint.
//
// A trainer gives the loop two functions, called in this order for every step, the loss
// checked in between:
//   forward(epoch, k) -> Forward   batch k of the epoch read, the lr set, the forward run
//   update(epoch, k)               its backward and, when due, the optimizer step
#ifndef MAE_TRAINING_TRAINING_LOOP_HPP
#define MAE_TRAINING_TRAINING_LOOP_HPP

#include "../core/common.hpp"
#include "../core/params.hpp"
#include "../core/processes.hpp"
#include "../data/loader.hpp"
#include "../io/checkpoint.hpp"
#include "../io/files.hpp"
#include "../io/safetensors.hpp"
#include "progress.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include <signal.h>
#include <unistd.h>

namespace mae {

// What a data-parallel trainer hands the backward before an optimizer step: its reports go to
// p.ready with the whole gradient store. Empty (no reports) for one process or without ready.
template <class S>
inline GradientsReady gradients_ready(const DataParallel& p, TensorStore<S>& grads) {
  if constexpr (std::is_same_v<S, float>)
    if (p.ranks > 1 && p.ready) return [&p, &grads](Index from) { p.ready(grads.data(), grads.size(), from); };
  return {};
}

// One line per step in the CSV log.
struct StepRecord {
  Index step;  // steps done, this one included
  int epoch;
  double loss, lr, images_per_s;
};

// What a step's forward reports.
struct Forward {
  double loss, lr;
};

// Checkpoints between epoch ends, and how many a run keeps (io/checkpoint_series.hpp).
struct SaveOptions {
  Index every_steps = 0;     // a checkpoint every N steps as well (0: at epoch ends only)
  double every_minutes = 0;  // and/or every T minutes (0: off)
  int keep = 3;              // numbered checkpoints kept: checkpoint-<step>.safetensors
};

// A request to stop, set by a signal handler (stop_on_signals) or by any code: a training
// loop finishes the optimizer step, its trainer writes a checkpoint, and run() returns (the
// trainer's stop_signal() says why). Under mpirun the processes agree on the step: a request
// on any of them stops all at the same one.
inline volatile std::sig_atomic_t& stop_request() {
  static volatile std::sig_atomic_t requested = 0;
  return requested;
}
namespace detail {
inline void on_stop_signal(int sig) {  // async-signal-safe: a flag, or _exit on the second signal
  if (stop_request() != 0) ::_exit(128 + sig);
  stop_request() = sig;
}
}  // namespace detail
// SIGTERM, SIGINT and SIGUSR1 (what Slurm's --signal sends) request a stop; a second one ends
// the process at once (exit status 128 + the signal).
inline void stop_on_signals() {
  struct sigaction sa {};
  sa.sa_handler = detail::on_stop_signal;
  sigemptyset(&sa.sa_mask);
  for (int s : {SIGTERM, SIGINT, SIGUSR1}) sigaction(s, &sa, nullptr);
}
// The `mae` program's exit status after a requested stop, checkpoint written (EX_TEMPFAIL:
// "try again later", what a job script's requeue looks for).
inline constexpr int kExitStopped = 75;

// Keeps a CSV's header and the rows whose `column` (0-based) is at most `last`: a resumed run's
// log, cut back to the checkpoint's step (the steps after it will be logged again).
inline void trim_csv(const std::string& path, int column, Index last) {
  std::ifstream in(path);
  if (!in) return;
  std::string line, out;
  bool header = true;
  while (std::getline(in, line)) {
    if (!header) {
      std::size_t at = 0;
      for (int c = 0; c < column && at != std::string::npos; ++c) {
        const std::size_t comma = line.find(',', at);
        at = comma == std::string::npos ? comma : comma + 1;
      }
      if (at == std::string::npos || std::atoll(line.c_str() + at) > last) continue;
    }
    out += line + "\n";
    header = false;
  }
  in.close();
  write_file(path, out);
}

struct LoopOptions {
  int epochs = 1;
  Index images_per_step = 1;  // for the throughput
  Index max_steps = -1;       // stop after this many steps in all (an interruption); -1: none
  std::string out_dir;        // log.csv goes here; empty: no log
  bool progress = true;       // a bar on a terminal, plain lines otherwise
  double log_interval_s = 15;
  std::string what = "training";  // for messages: "training stopped", "fine-tuning stopped"
  SaveOptions save;
  // data parallel: the mean over the processes (DataParallel::mean), for the stop and save votes
  std::function<void(float*, Index)> agree;
};

// A loader's share of a data-parallel run (DistributedSampler's); its batches per epoch.
inline Index shard_loader(BatchLoader& loader, const DataParallel& p) {
  loader.set_shard(p.rank, p.ranks);
  return loader.batches_per_epoch();
}

// What a data-parallel trainer checks before it starts: a mean to call, float weights (the
// mean is over floats), and checkpoints between optimizer steps. A checkpoint inside an
// accumulation window holds the partial gradient, which differs from rank to rank; resuming
// from one copy would not continue the run bit for bit, so the windows must end at every
// epoch's end and at the max_steps stop.
template <class S>
inline void check_data_parallel(const DataParallel& p, int accum_iter, Index steps_per_epoch, Index max_steps) {
  if (p.ranks <= 1) return;
  if (!p.mean) throw Error("data parallel over " + std::to_string(p.ranks) + " processes needs a mean function");
  if (!std::is_same_v<S, float>) throw Error("data parallel needs a float model");
  if (accum_iter > 1 && (steps_per_epoch % accum_iter != 0 || (max_steps >= 0 && max_steps % accum_iter != 0)))
    throw Error("data parallel with gradient accumulation over " + std::to_string(accum_iter) +
                " micro-batches: the steps per epoch (" + std::to_string(steps_per_epoch) +
                ") and the max_steps stop must be multiples of it, so that checkpoints fall between optimizer steps "
                "(change the batch, the accumulation or the number of images)");
}

// A resume on other images, or with another normalization, would not continue the same run:
// refused, naming what changed, unless `allow` (the caller's choice to go on anyway). A
// checkpoint written before runs recorded their data is not checked.
inline void require_same_data(const safetensors::File& f, const BatchLoader& loader, bool allow) {
  if (allow) return;
  const auto it = f.metadata().find(keys::data);
  if (it == f.metadata().end()) return;
  nlohmann::json then;
  try {
    then = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    f.fail(std::string("corrupt ") + keys::data + " metadata: " + e.what());
  }
  const nlohmann::json now = dataset_fingerprint(loader.dataset());
  std::string changed;
  const auto add = [&changed](const std::string& s) { changed += (changed.empty() ? "" : "; ") + s; };
  if (then.value("images", Index(-1)) != now["images"].get<Index>())
    add(std::to_string(then.value("images", Index(-1))) + " images then, " + now["images"].dump() + " now");
  if (then.value("channels", Index(-1)) != now["channels"].get<Index>())
    add(std::to_string(then.value("channels", Index(-1))) + " channels then, " + now["channels"].dump() + " now");
  if (then.value("classes", nlohmann::json::array()) != now["classes"])
    add("classes " + then.value("classes", nlohmann::json::array()).dump() + " then, " + now["classes"].dump() +
        " now");
  if (changed.empty() && then.value("items", std::string()) != now["items"].get<std::string>())
    add("the same number of images, but other files, labels or image sizes");
  const auto saved = read_normalization(f.metadata(), f.path());
  if (saved && (saved->mean != loader.mean() || saved->stddev != loader.stddev()))
    add("another normalization (the checkpoint's mean " + nlohmann::json(saved->mean).dump() + ", now " +
        nlohmann::json(loader.mean()).dump() + ")");
  if (!changed.empty())
    f.fail("checkpoint was trained on " + then.value("source", std::string("?")) + ", this run reads " +
           loader.dataset().name() + ": " + changed +
           ". Resuming would not continue the same run; to go on with these images anyway, allow other data "
           "(mae: --allow-other-data)");
}

// Refuses a run that would train nothing: a stop before the first step, or more micro-batches
// per optimizer step than an epoch has (the accumulation window restarts with each epoch, as
// engine_pretrain.py's, so no optimizer step would ever happen).
inline void check_run_length(Index max_steps, Index accum_iter, Index steps_per_epoch) {
  if (max_steps == 0 || max_steps < -1)
    throw Error("max_steps " + std::to_string(max_steps) + ": a run must take at least one step (-1: no stop)");
  if (accum_iter > steps_per_epoch)
    throw Error("accumulating " + std::to_string(accum_iter) + " micro-batches per optimizer step, but an epoch has " +
                std::to_string(steps_per_epoch) + ": no optimizer step would ever happen (accumulate at most " +
                std::to_string(steps_per_epoch) + ", or use smaller batches)");
}

// What both trainers check of their loader and options before they start.
inline void check_trainer_inputs(const BatchLoader& loader, Index batch_size, Index model_channels,
                                 double weight_decay) {
  if (loader.batch_size() != batch_size) throw Error("the loader's batch size differs from the options'");
  if (loader.channels() != model_channels)
    throw Error("the dataset has " + std::to_string(loader.channels()) + " channels; the model takes " +
                std::to_string(model_channels));
  if (!(weight_decay >= 0 && std::isfinite(weight_decay))) throw Error("weight_decay must be finite and >= 0");
}

class TrainingLoop {
 public:
  TrainingLoop(LoopOptions opt, Index steps_per_epoch) : opt_(std::move(opt)), iters_(steps_per_epoch) {
    if (opt_.epochs <= 0) throw Error("epochs must be positive");
    if (iters_ <= 0) throw Error("no step in an epoch: the dataset is smaller than one batch");
    if (!opt_.out_dir.empty()) {
      std::filesystem::create_directories(opt_.out_dir);
      remove_stale_temp_files_in(opt_.out_dir);
    }
  }

  Index steps_per_epoch() const { return iters_; }
  Index total_steps() const { return iters_ * opt_.epochs; }
  std::string log_path() const { return opt_.out_dir.empty() ? "" : opt_.out_dir + "/log.csv"; }
  const std::vector<StepRecord>& history() const { return history_; }

  // Steps from `step` (0, or where a resumed run left off) to the end of the last epoch, or
  // to max_steps, or to a requested stop (stop_request()). update(epoch, k) returns whether
  // the step ended an optimizer step (a checkpoint may follow it). epoch_end(epoch) runs after
  // each epoch's last step; save() between epoch ends, as SaveOptions says. `checkpoint` names
  // the file that a non-finite loss leaves as it was ("" if none). Returns true when every
  // epoch ran, false when max_steps or a stop request ended it (stop_signal() then says which
  // signal: > 0 this process's, -1 another process's); `step` is the number of steps done.
  template <class ForwardFn, class UpdateFn>
  bool run(ForwardFn&& forward, UpdateFn&& update, Index& step, const std::function<void(int)>& epoch_end,
           const std::string& checkpoint = "", bool append_log = false, const std::function<void()>& save = {}) {
    open_log(append_log, step);
    auto last_save = std::chrono::steady_clock::now();
    Index last_save_step = step;
    const auto t_start = std::chrono::steady_clock::now();
    Index images = 0;
    while (step < total_steps()) {
      if (opt_.max_steps >= 0 && step >= opt_.max_steps) return false;
      const int epoch = static_cast<int>(step / iters_);
      const Index k = step % iters_;
      const Forward f = forward(epoch, k);
      const double loss = f.loss;
      if (!std::isfinite(loss)) {
        progress_.finish_line();
        const bool kept = !checkpoint.empty() && std::filesystem::exists(checkpoint);
        throw Error("non-finite loss (" + std::to_string(loss) + ") at step " + std::to_string(step) + " (epoch " +
                    std::to_string(epoch) + "): " + opt_.what + " stopped" +
                    (kept ? "; the last checkpoint '" + checkpoint + "' is intact." : "."));
      }
      const bool boundary = update(epoch, k);
      ++step;
      images += opt_.images_per_step;
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
      const double ips = elapsed > 0 ? static_cast<double>(images) / elapsed : 0.0;
      const StepRecord rec{step, epoch, loss, f.lr, ips};
      history_.push_back(rec);
      write_log(rec);
      const double eta = ips > 0 ? static_cast<double>((total_steps() - step) * opt_.images_per_step) / ips : 0.0;
      progress_.update(epoch + 1, opt_.epochs, k + 1, iters_, rec.loss, rec.lr, rec.images_per_s, eta);
      bool save_now = false, stop_now = false;
      if (boundary) {  // between optimizer steps: vote on a checkpoint and on a stop
        const double minutes = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_save).count() / 60;
        float votes[2] = {opt_.save.every_minutes > 0 && minutes >= opt_.save.every_minutes ? 1.0f : 0.0f,
                          stop_request() != 0 ? 1.0f : 0.0f};
        if (opt_.agree) opt_.agree(votes, 2);  // every process sees every vote
        save_now = votes[0] > 0 || (opt_.save.every_steps > 0 && step - last_save_step >= opt_.save.every_steps);
        stop_now = votes[1] > 0;
      }
      if (k + 1 == iters_) {  // end of an epoch
        progress_.finish_line();
        if (epoch_end) epoch_end(epoch);
        last_save = std::chrono::steady_clock::now(), last_save_step = step;
      } else if (save_now && !stop_now && save) {  // (a stop's checkpoint is the trainer's)
        save();
        last_save = std::chrono::steady_clock::now(), last_save_step = step;
      }
      if (stop_now) {
        progress_.finish_line();
        stop_signal_ = stop_request() != 0 ? static_cast<int>(stop_request()) : -1;
        return false;
      }
    }
    return true;
  }

  // After run() returned false: the signal that stopped it (-1: another process's), 0 if
  // max_steps did.
  int stop_signal() const { return stop_signal_; }

 private:
  void open_log(bool append, Index step) {
    if (opt_.out_dir.empty()) return;
    append = append && std::filesystem::exists(log_path());
    if (append) trim_csv(log_path(), 0, step);  // the steps after the checkpoint come again
    log_.open(log_path(), append ? std::ios::app : std::ios::trunc);
    if (!log_) throw Error(log_path() + ": cannot write the log");
    if (!append) log_ << "step,epoch,loss,lr,images_per_s\n";
  }
  void write_log(const StepRecord& r) {
    if (!log_.is_open()) return;
    char line[160];
    std::snprintf(line, sizeof line, "%lld,%d,%.6f,%.6e,%.1f\n", static_cast<long long>(r.step), r.epoch, r.loss, r.lr,
                  r.images_per_s);
    log_ << line << std::flush;
  }

  LoopOptions opt_;
  Index iters_;
  Progress progress_{opt_.progress, opt_.log_interval_s};
  std::ofstream log_;
  std::vector<StepRecord> history_;
  int stop_signal_ = 0;
};

}  // namespace mae

#endif  // MAE_TRAINING_TRAINING_LOOP_HPP
