// mae/training/pretrain.hpp — the pretraining loop of main_pretrain.py / engine_pretrain.py, reusable:
// AdamW + per-iteration warmup/cosine schedule, gradient accumulation, a progress bar or
// periodic lines, a CSV log, atomic checkpoints with everything needed for a bit-exact
// resume, and a stop with a clear message on a non-finite loss.
#ifndef MAE_TRAINING_PRETRAIN_HPP
#define MAE_TRAINING_PRETRAIN_HPP

#include "../core/common.hpp"
#include "../data/loader.hpp"
#include "../io/checkpoint.hpp"
#include "../io/checkpoint_series.hpp"
#include "../io/safetensors.hpp"
#include "../layers/masking.hpp"
#include "../layers/patch.hpp"
#include "optim.hpp"
#include "training_loop.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

namespace mae {

struct TrainOptions {
  int epochs = 10;
  Index batch_size = 64;  // images per micro-batch
  int accum_iter = 1;     // micro-batches per optimizer step
  double blr = 1.5e-4;    // base lr: lr = blr * batch_size * accum_iter / 256
  double lr = 0;          // absolute lr; 0 = from blr
  double min_lr = 0;
  double warmup_epochs = 1;
  double weight_decay = 0.05;
  double mask_ratio = 0.75;
  std::uint64_t seed = 0;      // data order, augmentation (masking noise: the model's generator)
  std::string out_dir;         // checkpoint.safetensors and log.csv go here; empty: none
  bool progress = true;        // a bar on a terminal, plain lines otherwise
  double log_interval_s = 15;  // plain-line interval when not on a terminal
  Index max_steps = -1;        // stop after this many micro-batches in all (an interruption)
  // Masking noise seeded by each image's position in the epoch (masking.hpp's masking_noise)
  // instead of drawn from the model's generator: what a data-parallel run uses (always, with
  // more than one process), and what one process must use to train the same model.
  bool noise_by_position = false;
  bool allow_other_data = false;  // resume on images other than the checkpoint's (require_same_data)
  SaveOptions save;               // checkpoints between epoch ends, how many are kept
  DataParallel parallel;          // batch_size is then per process: the global batch is ranks times it

  Index global_batch() const { return batch_size * static_cast<Index>(accum_iter) * parallel.ranks; }
  bool position_noise() const { return noise_by_position || parallel.ranks > 1; }
  double effective_lr() const { return lr > 0 ? lr : LrSchedule::scaled(blr, global_batch()); }
  // What determines the trajectory: a resume must agree on these, except on how the global
  // batch is split over processes (require_same_trajectory).
  nlohmann::json trajectory_json() const {
    nlohmann::json j = {{"global_batch", global_batch()},
                        {"batch_size", batch_size},
                        {"accum_iter", accum_iter},
                        {"seed", seed},
                        {"mask_ratio", mask_ratio}};
    if (parallel.ranks > 1) j["ranks"] = parallel.ranks;  // (absent: one process, as before)
    if (position_noise()) j["noise_by_position"] = true;
    return j;
  }
  nlohmann::json to_json() const {
    nlohmann::json j = trajectory_json();
    j.update({{"epochs", epochs},
              {"blr", blr},
              {"lr", effective_lr()},
              {"min_lr", min_lr},
              {"warmup_epochs", warmup_epochs},
              {"weight_decay", weight_decay}});
    return j;
  }
};

// Only the first process of a data-parallel run writes the log and shows progress.
inline LoopOptions loop_options(const TrainOptions& o) {
  const bool first = o.parallel.rank == 0;
  return LoopOptions{o.epochs,
                     o.global_batch() / o.accum_iter,
                     o.max_steps,
                     first ? o.out_dir : "",
                     first && o.progress,
                     o.log_interval_s,
                     "training",
                     o.save,
                     o.parallel.ranks > 1 ? o.parallel.mean : std::function<void(float*, Index)>{}};
}

template <class Model>
class Trainer {
 public:
  using S = typename Model::Scalar;

  Trainer(Model& model, BatchLoader& loader, TrainOptions opt)
      : model_(model),
        loader_(loader),
        opt_(std::move(opt)),
        loop_(loop_options(opt_), shard_loader(loader_, opt_.parallel)) {
    if (opt_.accum_iter <= 0) throw Error("accum_iter must be positive");
    check_data_parallel<S>(opt_.parallel, opt_.accum_iter, loop_.steps_per_epoch(), opt_.max_steps);
    check_trainer_inputs(loader_, opt_.batch_size, Model::C, opt_.weight_decay);
    num_visible(Model::L, opt_.mask_ratio);  // validates the ratio now, not at the first step
    AdamWOptions ao;
    ao.weight_decay = opt_.weight_decay;
    optim_.reset(model_.parameters(), ao);
    schedule_.base_lr = opt_.effective_lr();
    schedule_.min_lr = opt_.min_lr;
    schedule_.warmup_epochs = opt_.warmup_epochs;
    schedule_.epochs = opt_.epochs;
    schedule_.check();
    check_run_length(opt_.max_steps, opt_.accum_iter, loop_.steps_per_epoch());
    model_.zero_grad();
  }

  std::string checkpoint_path() const { return opt_.out_dir.empty() ? "" : opt_.out_dir + "/checkpoint.safetensors"; }
  // the weights when run() returns, with their normalization (the model's own keys)
  std::string weights_path() const { return opt_.out_dir.empty() ? "" : opt_.out_dir + "/mae_final.safetensors"; }
  std::string log_path() const { return loop_.log_path(); }
  Index steps_done() const { return step_; }
  // After run() returned false: the signal that stopped it (-1: another process's), 0 if
  // max_steps did.
  int stop_signal() const { return loop_.stop_signal(); }
  Index steps_per_epoch() const { return loop_.steps_per_epoch(); }
  Index total_steps() const { return loop_.total_steps(); }
  const std::vector<StepRecord>& history() const { return loop_.history(); }
  AdamW<S>& optimizer() { return optim_; }
  const TrainOptions& options() const { return opt_; }

  // Runs until the last epoch ends (or max_steps, with a checkpoint), then writes the weights
  // (weights_path()). on_epoch_end(epoch) is called after the epoch's checkpoint is written.
  // Returns true if training finished all epochs.
  bool run(const std::function<void(int)>& on_epoch_end = {}) {
    const Index iters = steps_per_epoch(), N = opt_.batch_size, C = Model::C, Sz = Model::Config::img_size;
    std::vector<float> fbatch(static_cast<std::size_t>(N * C * Sz * Sz));
    std::vector<S> sbatch;  // only for double models: the loader writes float
    if constexpr (!std::is_same_v<S, float>) sbatch.resize(fbatch.size());
    std::vector<S> noise(opt_.position_noise() ? static_cast<std::size_t>(N * Model::L) : 0);
    const GradientsReady overlap = gradients_ready(opt_.parallel, model_.gradients()), none;
    const auto forward = [&](int epoch, Index k) {
      // engine_pretrain.py: the lr is set at the start of each accumulation window
      if (k % opt_.accum_iter == 0) lr_ = schedule_.at(static_cast<double>(k) / static_cast<double>(iters) + epoch);
      loader_.batch(epoch, k, fbatch.data());
      const S* batch = fbatch.data();
      if constexpr (!std::is_same_v<S, float>) {
        std::copy(fbatch.begin(), fbatch.end(), sbatch.begin());
        batch = sbatch.data();
      }
      if (!noise.empty())
        for (Index i = 0; i < N; ++i)
          masking_noise(noise.data() + i * Model::L, Model::L, opt_.seed, epoch, loader_.position(k, i));
      S loss = model_.forward(images(batch, N, C, Sz, Sz), opt_.mask_ratio, noise.empty() ? nullptr : noise.data());
      if constexpr (std::is_same_v<S, float>)
        if (opt_.parallel.ranks > 1) opt_.parallel.mean(&loss, 1);  // every process logs (and checks) the same
      return Forward{static_cast<double>(loss), lr_};
    };
    const auto update = [&](int, Index k) {
      const bool step = (k + 1) % opt_.accum_iter == 0;  // the gradients' mean may begin in its backward
      model_.backward(static_cast<S>(1.0 / opt_.accum_iter), step ? overlap : none);  // loss /= accum_iter; backward
      ++pending_micro_;
      if (step) {
        if constexpr (std::is_same_v<S, float>)  // one mean per optimizer step, as DDP's no_sync
          if (opt_.parallel.ranks > 1) opt_.parallel.mean(model_.gradients().data(), model_.gradients().size());
        optim_.step(model_.parameters(), model_.gradients(), lr_);
        model_.zero_grad();
        pending_micro_ = 0;
      }
      return step;  // between optimizer steps: a checkpoint or a stop may follow
    };
    Index saved = -1;  // the step of the last checkpoint this run wrote
    const auto save = [&] { save_checkpoint(), saved = step_; };
    const auto epoch_end = [&](int epoch) {
      save();
      if (on_epoch_end) on_epoch_end(epoch);
    };
    const bool finished =
        loop_.run(forward, update, step_, epoch_end, checkpoint_path(), /*append_log=*/resumed_, save);
    if (!finished && saved != step_) save();  // (a stop right after an epoch's end has its checkpoint)
    if (!finished) opt_.parallel.barrier();   // no process leaves (exits) before the checkpoint is complete
    // a stop request leaves the checkpoint to resume from, not "final" weights
    if (!opt_.out_dir.empty() && opt_.parallel.rank == 0 && stop_signal() == 0) save_weights(weights_path());
    return finished;
  }

  // --- checkpoints -------------------------------------------------------------------------
  // (only the first process of a data-parallel run writes: every process holds the same state)
  // into out_dir as checkpoint-<step>.safetensors and checkpoint.safetensors, keeping the last
  // save.keep (io/checkpoint_series.hpp)
  void save_checkpoint() const {
    if (!opt_.out_dir.empty() && opt_.parallel.rank == 0)
      write_checkpoint_series(opt_.out_dir, step_, checkpoint_bytes(), opt_.save.keep);
  }
  void save_checkpoint(const std::string& path) const { write_file(path, checkpoint_bytes()); }
  std::string checkpoint_bytes() const {
    std::vector<safetensors::TensorOut> t = model_.state_dict();
    Metadata meta = model_.metadata();
    optim_.save_state(model_.parameters(), t, meta);
    if (pending_micro_ > 0)  // inside an accumulation window: the partial gradient is state too
      for (const auto& info : model_.parameters().tensors())
        t.push_back(safetensors::TensorOut::of<S>(kPendingGrad + info.name, info.shape,
                                                  model_.gradients().data() + info.offset));
    RunState run;
    run.step = step_, run.pending_micro_batches = pending_micro_, run.lr = lr_, run.rng = model_.rng().state();
    run.write(meta);
    write_trajectory(meta, keys::train, opt_.to_json());
    write_normalization(meta, loader_.mean(), loader_.stddev());
    meta[keys::data] = data_;
    return safetensors::serialize(t, meta);
  }

  // The weights alone, with the normalization they were trained with (mae_final.safetensors).
  void save_weights(const std::string& path) const {
    Metadata meta = model_.metadata();
    write_normalization(meta, loader_.mean(), loader_.stddev());
    safetensors::save(path, model_.state_dict(), meta);
  }

  // Continue from a checkpoint of this trainer: weights, AdamW moments, step, lr, the model's
  // random generator. Refuses a checkpoint of another model configuration or trajectory.
  void resume(const std::string& path) {
    const safetensors::File f(path);
    Model::check_configuration(f);  // before the optimizer tensors, whose shapes would also differ
    const RunState run = RunState::read(f, /*with_lr=*/true, "training");
    require_same_data(f, loader_, opt_.allow_other_data);  // before the options: other data is the likelier mistake
    const nlohmann::json then = require_same_trajectory(f, keys::train, opt_.trajectory_json(), "trained");
    const auto& params = model_.parameters();
    typename AdamW<S>::State optim = AdamW<S>::read_state(f, params);
    std::vector<S> g(static_cast<std::size_t>(params.size()), S(0));
    if (run.pending_micro_batches > 0)
      for (const auto& info : params.tensors()) f.read(kPendingGrad + info.name, info.shape, g.data() + info.offset);
    Rng probe;
    probe.set_state(run.rng);
    model_.load(f, /*strict=*/false);  // checks the configuration; changes nothing if it throws
    // nothing below can fail
    optim_.load_state(std::move(optim));
    std::copy(g.begin(), g.end(), model_.gradients().data());
    model_.rng() = probe;
    step_ = run.step;
    pending_micro_ = run.pending_micro_batches;
    lr_ = *run.lr;
    resumed_ = true;
    // masks drawn by position stay so (a run of several processes resumed on one)
    if (then.value("noise_by_position", false)) opt_.noise_by_position = true;
  }

 private:
  static inline const std::string kPendingGrad = "optimizer.pending_grad.";
  Model& model_;
  BatchLoader& loader_;
  TrainOptions opt_;
  TrainingLoop loop_;
  AdamW<S> optim_;
  LrSchedule schedule_;
  Index step_ = 0;
  Index pending_micro_ = 0;  // micro-batches accumulated since the last optimizer step
  double lr_ = 0;
  bool resumed_ = false;
  std::string data_ = dataset_fingerprint(loader_.dataset()).dump();  // what every checkpoint records
};

}  // namespace mae

#endif  // MAE_TRAINING_PRETRAIN_HPP
