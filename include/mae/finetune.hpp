// mae/finetune.hpp — end-to-end fine-tuning of a VisionTransformer (main_finetune.py /
// engine_finetune.py): AdamW (0.9, 0.999) with layer-wise lr decay, per-iteration warmup +
// half-cycle cosine, label smoothing and drop path (in the model's Options), the
// augmented batches of the pretraining loader, a test-set evaluation after every epoch,
// log.csv (per step) and eval.csv (per epoch), and an atomic checkpoint after every epoch.
// Not here: mixup/cutmix, RandAugment and random erasing of the reference's recipe.
#ifndef MAE_FINETUNE_HPP
#define MAE_FINETUNE_HPP

#include "classifier.hpp"
#include "common.hpp"
#include "cross_entropy.hpp"
#include "data/loader.hpp"
#include "optim.hpp"
#include "patch.hpp"
#include "training_loop.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
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
  Index max_steps = -1;  // stop after this many steps (smoke runs)

  double effective_lr() const { return lr > 0 ? lr : LrSchedule::scaled(blr, batch_size); }
  nlohmann::json to_json() const {
    return {{"epochs", epochs},
            {"batch_size", batch_size},
            {"blr", blr},
            {"lr", effective_lr()},
            {"min_lr", min_lr},
            {"warmup_epochs", warmup_epochs},
            {"weight_decay", weight_decay},
            {"layer_decay", layer_decay},
            {"seed", seed}};
  }
};

struct EvalResult {
  double accuracy = 0;  // top-1
  double loss = 0;      // mean cross-entropy without smoothing
  Index count = 0;
};

// Top-1 accuracy of `model` (evaluation mode) on `count` images; image(i, dst) writes image
// i normalized as (C, H, W) floats.
template <class Vit, class ImageFn>
EvalResult evaluate_classifier(Vit& model, Index count, const int* labels, ImageFn&& image, Index batch = 256) {
  using S = typename Vit::Scalar;
  const Index K = model.num_classes();
  std::vector<S> probs(static_cast<std::size_t>(batch * K));
  std::vector<int> pred(static_cast<std::size_t>(batch));
  EvalResult r;
  r.count = count;
  Index correct = 0;
  model.for_each_batch(count, batch, image, [&](Index s, Index B) {
    model.predictions(pred.data());
    for (Index i = 0; i < B; ++i) correct += pred[i] == labels[s + i];
    r.loss +=
        static_cast<double>(cross_entropy_forward(probs.data(), model.logits().data(), labels + s, B, K, 0.0)) * B;
  });
  r.accuracy = static_cast<double>(correct) / static_cast<double>(count);
  r.loss /= static_cast<double>(count);
  return r;
}

inline LoopOptions loop_options(const FinetuneOptions& o) {
  return LoopOptions{o.epochs, o.batch_size, o.max_steps, o.out_dir, o.progress, o.log_interval_s, "fine-tuning"};
}

template <class Vit>
class Finetuner {
 public:
  using S = typename Vit::Scalar;

  // evaluate(): the test-set result after each epoch (may be empty).
  Finetuner(Vit& model, BatchLoader& loader, FinetuneOptions opt, std::function<EvalResult()> evaluate = {})
      : model_(model),
        loader_(loader),
        opt_(std::move(opt)),
        evaluate_(std::move(evaluate)),
        loop_(loop_options(opt_), loader_.batches_per_epoch()) {
    if (loader_.batch_size() != opt_.batch_size) throw Error("the loader's batch size differs from the options'");
    if (loader_.channels() != Vit::C)
      throw Error("the dataset has " + std::to_string(loader_.channels()) + " channels; the model takes " +
                  std::to_string(Vit::C));
    AdamWOptions ao;
    ao.beta2 = 0.999;  // main_finetune.py: torch.optim.AdamW's default betas
    ao.weight_decay = opt_.weight_decay;
    const double ld = opt_.layer_decay;
    optim_.reset(model_.parameters(), ao, [ld](const TensorInfo& t) { return layer_decay_group(t, Vit::kDepth, ld); });
    schedule_ = LrSchedule{opt_.effective_lr(), opt_.min_lr, opt_.warmup_epochs, static_cast<double>(opt_.epochs)};
  }

  std::string checkpoint_path() const { return opt_.out_dir.empty() ? "" : opt_.out_dir + "/classifier.safetensors"; }
  Index steps_per_epoch() const { return loop_.steps_per_epoch(); }
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
    open_eval_log();
    const auto t_start = std::chrono::steady_clock::now();
    double lr = 0;
    const auto forward = [&](int epoch, Index k) {
      lr = schedule_.at(static_cast<double>(k) / static_cast<double>(iters) + epoch);
      loader_.batch(epoch, k, fbatch.data(), labels.data());
      const S* batch = fbatch.data();
      if constexpr (!std::is_same_v<S, float>) {
        std::copy(fbatch.begin(), fbatch.end(), sbatch.begin());
        batch = sbatch.data();
      }
      model_.zero_grad();
      return Forward{static_cast<double>(model_.forward(images(batch, N, C, Sz, Sz), labels.data(), /*training=*/true)),
                     lr};
    };
    const auto update = [&](int, Index) {
      model_.backward();
      optim_.step(model_.parameters(), model_.gradients(), lr);
    };
    const auto epoch_end = [&](int epoch) {
      EvalResult ev;
      if (evaluate_) ev = evaluate_();
      evals_.push_back(ev);
      if (eval_log_.is_open())
        eval_log_ << epoch + 1 << ',' << loop_.history().back().step << ',' << ev.accuracy << ',' << ev.loss << ','
                  << std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count() << std::endl;
      if (!opt_.out_dir.empty())
        model_.save(checkpoint_path(), {{"mae.finetune", opt_.to_json().dump()},
                                        {"mae.epoch", std::to_string(epoch + 1)},
                                        {"mae.test_accuracy", std::to_string(ev.accuracy)}});
      if (on_epoch_end) on_epoch_end(epoch, ev);
    };
    Index step = 0;
    return loop_.run(forward, update, step, epoch_end, checkpoint_path());
  }

 private:
  void open_eval_log() {
    if (opt_.out_dir.empty()) return;
    eval_log_.open(opt_.out_dir + "/eval.csv", std::ios::trunc);
    if (!eval_log_) throw Error(opt_.out_dir + ": cannot write the logs");
    eval_log_ << "epoch,step,test_accuracy,test_loss,seconds\n";
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
};

}  // namespace mae

#endif  // MAE_FINETUNE_HPP
