// mae/training/finetune.hpp — end-to-end fine-tuning of a VisionTransformer (main_finetune.py /
// engine_finetune.py): AdamW (0.9, 0.999) with layer-wise lr decay, per-iteration warmup +
// half-cycle cosine, label smoothing and drop path (in the model's Options), the
// augmented batches of the pretraining loader, a test-set evaluation after every epoch,
// log.csv (per step) and eval.csv (per epoch), and after every epoch (and at a max_steps
// stop) two atomic files: classifier.safetensors (the weights, for evaluation and prediction)
// and checkpoint.safetensors (weights, AdamW moments, step and drop-path generator: resume()
// continues bit for bit). Data parallel as pretraining (pretrain.hpp): FinetuneOptions::parallel.
// Mixup / cutmix (data/mixup.hpp: soft targets, FinetuneOptions::mixup) and gradient clipping
// (clip_grad) here; RandAugment and random erasing are the loader's (AugmentOptions).
#ifndef MAE_TRAINING_FINETUNE_HPP
#define MAE_TRAINING_FINETUNE_HPP

#include "../core/common.hpp"
#include "../data/loader.hpp"
#include "../data/mixup.hpp"
#include "../io/checkpoint.hpp"
#include "../io/checkpoint_series.hpp"
#include "../layers/cross_entropy.hpp"
#include "../layers/patch.hpp"
#include "../models/classifier.hpp"
#include "optim.hpp"
#include "training_loop.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

namespace mae {

// --- parameter groups of fine-tuning (param_groups_lrd in util/lr_decay.py) ------------
// Layer id: cls_token, pos_embed, patch_embed -> 0; blocks.i -> i + 1; the rest -> depth + 1.
inline Index vit_layer_id(const std::string& name, Index depth) {
  if (name == "cls_token" || name == "pos_embed" || name.rfind("patch_embed", 0) == 0) return 0;
  if (name.rfind("blocks.", 0) == 0) return std::stoll(name.substr(7)) + 1;
  return depth + 1;
}
// lr scale layer_decay^(depth + 1 - layer_id); no weight decay for 1-D tensors, cls_token and pos_embed.
inline ParamGroup layer_decay_group(const TensorInfo& t, Index depth, double layer_decay) {
  const bool no_decay = t.shape.size() == 1 || t.name == "cls_token" || t.name == "pos_embed";
  return ParamGroup{!no_decay, std::pow(layer_decay, static_cast<double>(depth + 1 - vit_layer_id(t.name, depth)))};
}

struct FinetuneOptions {
  int epochs = 10;
  Index batch_size = 64;
  double blr = 1e-3;  // lr = blr * batch_size / 256
  double lr = 0;      // absolute lr; 0 = from blr
  double min_lr = 1e-6;
  double warmup_epochs = 1;
  double weight_decay = 0.05;
  double layer_decay = 0.75;  // lr scale layer_decay^(depth + 1 - layer_id)
  std::uint64_t seed = 0;     // data order and augmentation
  std::string out_dir;        // classifier.safetensors, log.csv, eval.csv; empty: none
  bool progress = true;
  double log_interval_s = 15;
  Index max_steps = -1;  // stop after this many steps (an interruption; the checkpoint is written)
  std::map<std::string, std::string> metadata;  // stored in both files (e.g. the class names)
  // timm's Mixup in mode "batch" on each process's batch (as DDP: each process mixes its own
  // share); off by default here (alphas 0), on in `mae finetune` (0.8 / 1.0, the recipe's).
  MixupOptions mixup{0.0, 0.0};
  double clip_grad = 0;  // max gradient L2 norm (0: no clipping, the reference's default)
  // Drop path drawn per sample from (seed, epoch, position in the epoch) instead of from the
  // model's generator: what a data-parallel run uses (always, with more than one process),
  // and what one process must use to train the same model.
  bool drop_path_by_position = false;
  bool allow_other_data = false;  // resume on images other than the checkpoint's (require_same_data)
  SaveOptions save;               // checkpoints between epoch ends, how many are kept
  DataParallel parallel;          // batch_size is then per process: the global batch is ranks times it

  Index global_batch() const { return batch_size * parallel.ranks; }
  bool position_drop_path() const { return drop_path_by_position || parallel.ranks > 1; }
  double effective_lr() const { return lr > 0 ? lr : LrSchedule::scaled(blr, global_batch()); }
  // What determines the trajectory: a resume must agree on these, except on how the global
  // batch is split over processes (require_same_trajectory).
  nlohmann::json trajectory_json() const {
    nlohmann::json j = {{"epochs", epochs},
                        {"global_batch", global_batch()},
                        {"batch_size", batch_size},
                        {"lr", effective_lr()},
                        {"min_lr", min_lr},
                        {"warmup_epochs", warmup_epochs},
                        {"weight_decay", weight_decay},
                        {"layer_decay", layer_decay},
                        {"seed", seed}};
    if (parallel.ranks > 1) j["ranks"] = parallel.ranks;  // (absent: one process, as before)
    if (position_drop_path()) j["drop_path_by_position"] = true;
    // present when off too: a resume compares the entries of the run it continues into
    j["mixup"] = mixup.active() ? nlohmann::json{{"mixup", mixup.mixup_alpha},
                                                 {"cutmix", mixup.cutmix_alpha},
                                                 {"prob", mixup.prob},
                                                 {"switch_prob", mixup.switch_prob},
                                                 {"smoothing", mixup.label_smoothing}}
                                : nlohmann::json("off");
    j["clip_grad"] = clip_grad;
    return j;
  }
  nlohmann::json to_json() const {
    nlohmann::json j = trajectory_json();
    j["blr"] = blr;
    return j;
  }
};

// What the Finetuner logs after each epoch (inference/classify.hpp's evaluate() gives it:
// {report.top1(), report.mean_loss(), report.count()}).
struct EvalResult {
  double accuracy = 0;  // top-1
  double loss = 0;      // mean cross-entropy without smoothing
  Index count = 0;
};

// Only the first process of a data-parallel run writes the logs and shows progress.
inline LoopOptions loop_options(const FinetuneOptions& o) {
  const bool first = o.parallel.rank == 0;
  return LoopOptions{o.epochs,
                     o.global_batch(),
                     o.max_steps,
                     first ? o.out_dir : "",
                     first && o.progress,
                     o.log_interval_s,
                     "fine-tuning",
                     o.save,
                     o.parallel.ranks > 1 ? o.parallel.mean : std::function<void(float*, Index)>{}};
}

template <class Vit>
class Finetuner {
 public:
  using S = typename Vit::Scalar;

  // evaluate(): the test-set result after each epoch (may be empty). Data parallel: every
  // process calls it and should get the same result (the reference's default, dist_eval off:
  // every process evaluates the whole test set).
  Finetuner(Vit& model, BatchLoader& loader, FinetuneOptions opt, std::function<EvalResult()> evaluate = {})
      : model_(model),
        loader_(loader),
        opt_(std::move(opt)),
        evaluate_(std::move(evaluate)),
        loop_(loop_options(opt_), shard_loader(loader_, opt_.parallel)) {
    check_data_parallel<S>(opt_.parallel, 1, loop_.steps_per_epoch(), opt_.max_steps);
    opt_.mixup.check();
    if (opt_.mixup.active() && opt_.batch_size % 2)
      throw Error("mixup / cutmix pair image i with image N-1-i: the batch size (" + std::to_string(opt_.batch_size) +
                  ") must be even");
    if (!(opt_.clip_grad >= 0 && std::isfinite(opt_.clip_grad))) throw Error("clip_grad must be finite and >= 0");
    check_trainer_inputs(loader_, opt_.batch_size, Vit::C, opt_.weight_decay);
    AdamWOptions ao;
    ao.beta2 = 0.999;  // main_finetune.py: torch.optim.AdamW's default betas
    ao.weight_decay = opt_.weight_decay;
    const double ld = opt_.layer_decay;
    optim_.reset(model_.parameters(), ao, [ld](const TensorInfo& t) { return layer_decay_group(t, Vit::kDepth, ld); });
    schedule_ = LrSchedule{opt_.effective_lr(), opt_.min_lr, opt_.warmup_epochs, static_cast<double>(opt_.epochs)};
    schedule_.check();
    check_run_length(opt_.max_steps, 1, loop_.steps_per_epoch());
  }

  std::string classifier_path() const { return opt_.out_dir.empty() ? "" : opt_.out_dir + "/classifier.safetensors"; }
  std::string checkpoint_path() const { return opt_.out_dir.empty() ? "" : opt_.out_dir + "/checkpoint.safetensors"; }
  Index steps_per_epoch() const { return loop_.steps_per_epoch(); }
  Index steps_done() const { return step_; }
  // After run() returned false: the signal that stopped it (-1: another process's), 0 if
  // max_steps did.
  int stop_signal() const { return loop_.stop_signal(); }
  const std::vector<StepRecord>& history() const { return loop_.history(); }
  const std::vector<EvalResult>& evaluations() const { return evals_; }
  AdamW<S>& optimizer() { return optim_; }

  // Returns true when all epochs ran (false: stopped by max_steps).
  bool run(const std::function<void(int, const EvalResult&)>& on_epoch_end = {}) {
    const Index iters = steps_per_epoch(), N = opt_.batch_size, C = Vit::C, Sz = Vit::Config::img_size;
    std::vector<float> fbatch(static_cast<std::size_t>(N * C * Sz * Sz));
    std::vector<S> sbatch;  // only for double models: the loader writes float
    if constexpr (!std::is_same_v<S, float>) sbatch.resize(fbatch.size());
    std::vector<int> labels(static_cast<std::size_t>(N));
    std::vector<float> targets(opt_.mixup.active() ? static_cast<std::size_t>(N * model_.num_classes()) : 0);
    std::vector<std::uint64_t> seeds(opt_.position_drop_path() ? static_cast<std::size_t>(N) : 0);
    const GradientsReady overlap = gradients_ready(opt_.parallel, model_.gradients());  // the mean begins in backward
    open_eval_log();
    const auto t_start = std::chrono::steady_clock::now();
    double lr = 0;
    const auto forward = [&](int epoch, Index k) {
      lr = schedule_.at(static_cast<double>(k) / static_cast<double>(iters) + epoch);
      loader_.batch(epoch, k, fbatch.data(), labels.data());
      if (opt_.mixup.active()) {  // one draw per process and batch, from (seed, epoch, batch, rank)
        Rng r(mix_seed(opt_.seed ^ 0x6d697875ull, static_cast<std::uint64_t>(epoch),
                       static_cast<std::uint64_t>(k) * 65536u + static_cast<std::uint64_t>(opt_.parallel.rank)));
        const MixParams mp = draw_mix(r, opt_.mixup, Sz, Sz);
        apply_mix(mp, fbatch.data(), N, C, Sz, Sz);
        mix_targets(targets.data(), labels.data(), N, model_.num_classes(), mp.lam, opt_.mixup.label_smoothing);
      }
      const S* batch = fbatch.data();
      if constexpr (!std::is_same_v<S, float>) {
        std::copy(fbatch.begin(), fbatch.end(), sbatch.begin());
        batch = sbatch.data();
      }
      for (Index i = 0; i < static_cast<Index>(seeds.size()); ++i)
        seeds[i] = mix_seed(opt_.seed ^ 0x64726f70ull, static_cast<std::uint64_t>(epoch),
                            static_cast<std::uint64_t>(loader_.position(k, i)));
      model_.zero_grad();
      const std::uint64_t* sample_seeds = seeds.empty() ? nullptr : seeds.data();
      S loss = targets.empty()
                   ? model_.forward(images(batch, N, C, Sz, Sz), labels.data(), /*training=*/true, sample_seeds)
                   : model_.forward_soft(images(batch, N, C, Sz, Sz), targets.data(), /*training=*/true, sample_seeds);
      if constexpr (std::is_same_v<S, float>)
        if (opt_.parallel.ranks > 1) opt_.parallel.mean(&loss, 1);  // every process logs (and checks) the same
      return Forward{static_cast<double>(loss), lr};
    };
    const auto update = [&](int, Index) {
      model_.backward(S(1), overlap);
      if constexpr (std::is_same_v<S, float>)
        if (opt_.parallel.ranks > 1) opt_.parallel.mean(model_.gradients().data(), model_.gradients().size());
      if (opt_.clip_grad > 0) clip_grad_norm(model_.gradients().data(), model_.gradients().size(), opt_.clip_grad);
      optim_.step(model_.parameters(), model_.gradients(), lr);
      return true;  // every step is an optimizer step: a checkpoint or a stop may follow
    };
    Index saved = -1, classified = -1;  // the steps of the last checkpoint and classifier this run wrote
    const auto epoch_end = [&](int epoch) {
      EvalResult ev;
      if (evaluate_) ev = evaluate_();
      evals_.push_back(ev);
      if (eval_log_.is_open())
        eval_log_ << epoch + 1 << ',' << loop_.history().back().step << ',' << ev.accuracy << ',' << ev.loss << ','
                  << std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count() << std::endl;
      save(epoch + 1, ev.accuracy, /*checkpoint=*/true, /*classifier=*/true), saved = classified = step_;
      if (on_epoch_end) on_epoch_end(epoch, ev);
    };
    const auto between = [&] {
      save(static_cast<int>(step_ / iters), -1, /*checkpoint=*/true, /*classifier=*/false), saved = step_;
    };
    const bool finished =
        loop_.run(forward, update, step_, epoch_end, checkpoint_path(), /*append_log=*/resumed_, between);
    if (!finished) {  // the checkpoint (unless just written); after max_steps the classifier too
      const bool checkpoint = saved != step_, classifier = stop_signal() == 0 && classified != step_;
      if (checkpoint || classifier) save(static_cast<int>(step_ / iters), -1, checkpoint, classifier);
    }
    if (!finished) opt_.parallel.barrier();  // no process leaves (exits) before the checkpoint is complete
    return finished;
  }

  // Continue from this fine-tuning's checkpoint.safetensors: weights, AdamW moments, step,
  // the drop-path generator. Refuses one of another classifier or schedule; a bad file changes
  // nothing.
  void resume(const std::string& path) {
    const safetensors::File f(path);
    const RunState run = RunState::read(f, /*with_lr=*/false, "fine-tuning");
    require_metadata(f, keys::classifier, "fine-tuning checkpoint");
    const std::string& described = f.metadata().at(keys::classifier);
    if (described != model_.name())
      f.fail("checkpoint is for another classifier (" + described + "); this one is " + model_.name());
    require_same_data(f, loader_, opt_.allow_other_data);  // before the options: other data is the likelier mistake
    const nlohmann::json then = require_same_trajectory(f, keys::finetune, trajectory_json(), "fine-tuned");
    const auto& params = model_.parameters();
    typename AdamW<S>::State optim = AdamW<S>::read_state(f, params);
    std::vector<S> w(static_cast<std::size_t>(params.size()));
    std::vector<TensorIn<S>> wanted;
    for (const auto& info : params.tensors()) wanted.push_back({info.name, info.shape, w.data() + info.offset});
    load_staged(f, wanted, /*strict=*/true, model_.name(), AdamW<S>::state_names(params));
    Rng rng;
    rng.set_state(run.rng);
    if (run.step < 0 || run.step > loop_.total_steps())
      f.fail("step " + std::to_string(run.step) + " is outside this run");
    // nothing below can fail
    std::copy(w.begin(), w.end(), model_.parameters().data());
    optim_.load_state(std::move(optim));
    model_.rng() = rng;
    step_ = run.step;
    resumed_ = true;
    // drop path drawn by position stays so (a run of several processes resumed on one)
    if (then.value("drop_path_by_position", false)) opt_.drop_path_by_position = true;
  }

 private:
  // The options' trajectory and the loader's fine-tuning augmentations.
  nlohmann::json trajectory_json() const {
    nlohmann::json j = opt_.trajectory_json();
    const AugmentOptions& a = loader_.augment_options();
    j["augment"] = {{"rand_augment", a.rand_augment ? a.rand_augment_options.spec() : "none"},
                    {"reprob", a.erasing.prob}};
    return j;
  }

  void open_eval_log() {
    if (opt_.out_dir.empty() || opt_.parallel.rank != 0) return;
    const std::string path = opt_.out_dir + "/eval.csv";
    const bool append = resumed_ && std::filesystem::exists(path);
    if (append) trim_csv(path, 1, step_);  // the epochs after the checkpoint come again
    eval_log_.open(path, append ? std::ios::app : std::ios::trunc);
    if (!eval_log_) throw Error(opt_.out_dir + ": cannot write the logs");
    if (!append) eval_log_ << "epoch,step,test_accuracy,test_loss,seconds\n";
  }

  // checkpoint.safetensors (the weights, optimizer and step) and/or classifier.safetensors
  // (the weights: at epoch ends and a max_steps stop, not between, nor at a signal's stop,
  // after which the run goes on); only the first process of a data-parallel run writes
  // (every process holds the same state).
  void save(int epoch, double accuracy, bool checkpoint, bool classifier) const {
    if (opt_.out_dir.empty() || opt_.parallel.rank != 0) return;
    Metadata meta = model_.metadata();
    meta.insert(opt_.metadata.begin(), opt_.metadata.end());
    write_trajectory(meta, keys::finetune, trajectory_json());
    write_normalization(meta, loader_.mean(), loader_.stddev());
    meta[keys::data] = data_;
    meta[keys::epoch] = std::to_string(epoch);
    if (accuracy >= 0) meta[keys::test_accuracy] = std::to_string(accuracy);
    std::vector<safetensors::TensorOut> t = model_.state_dict();
    if (classifier) safetensors::save(classifier_path(), t, meta);
    if (!checkpoint) return;
    optim_.save_state(model_.parameters(), t, meta);
    RunState run;
    run.step = step_, run.rng = model_.rng().state();
    run.write(meta);
    write_checkpoint_series(opt_.out_dir, step_, safetensors::serialize(t, meta), opt_.save.keep);
  }

  Vit& model_;
  BatchLoader& loader_;
  FinetuneOptions opt_;
  std::function<EvalResult()> evaluate_;
  TrainingLoop loop_;
  AdamW<S> optim_;
  LrSchedule schedule_;
  std::ofstream eval_log_;
  std::vector<EvalResult> evals_;
  Index step_ = 0;
  bool resumed_ = false;
  std::string data_ = dataset_fingerprint(loader_.dataset()).dump();  // what every checkpoint records
};

}  // namespace mae

#endif  // MAE_TRAINING_FINETUNE_HPP
