// mae finetune: a ViT classifier end to end from an MAE encoder (main_finetune.py).
#pragma once

#include "common.hpp"

#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

namespace mae_tool {

template <class Cfg>
int finetune(FinetuneArgs a) {
  using Vit = mae::VisionTransformer<Cfg>;
  constexpr Index S = Cfg::img_size, C = Cfg::in_chans;
  set_threads(a.run);
  a.ft.seed = a.run.seed, a.ft.progress = a.run.progress, a.ft.parallel = process_group();
  a.ft.batch_size = per_process_batch(a.run, a.ft.batch_size, a.ft.parallel);
  const auto owned = claim_run_directory(a.ft.out_dir, a.resume, a.overwrite, a.ft.parallel.rank == 0);
  Startup start(a.data, a.ft.out_dir + "/image_index.txt", a.ft.parallel);
  Split train(a.data, "train", C, S, true, start), val(a.data, "val", C, S, true, start);
  require_same_classes(train, val);
  const std::vector<std::string> classes = train.classes();
  typename Vit::Options vo;
  vo.num_classes = static_cast<Index>(classes.size()), vo.drop_path = a.drop_path;
  vo.label_smoothing = a.smoothing, vo.global_pool = a.pool == "avg", vo.seed = a.ft.seed;
  vo.precision = precision_of(a.bf16);
  Vit model(vo);
  if (!a.init.empty() && a.resume.empty()) {
    const Index g0 = model.load_encoder(a.init);
    std::printf("encoder: %s\n", a.init.c_str());
    if (g0 != Vit::Config::grid)  // the official interpolate_pos_embed's message
      std::printf("pos_embed interpolated from %lldx%lld to %lldx%lld patches\n", static_cast<long long>(g0),
                  static_cast<long long>(g0), static_cast<long long>(Vit::Config::grid),
                  static_cast<long long>(Vit::Config::grid));
  } else if (a.resume.empty()) {
    std::printf("encoder: randomly initialized (no --init)\n");
  }
  train.verify(a.data.verify), val.verify(a.data.verify);
  const std::string& ref = a.resume.empty() ? a.init : a.resume;
  const auto norm = normalization(a.data, metadata_of(ref), train.dataset(), ref, start);
  start.save();
  print(norm);
  mae::AugmentOptions aug;
  aug.scale_min = a.crop_min, aug.random_resized_crop = a.crop_min < 1.0;
  aug.rand_augment = a.aa != "none";
  if (aug.rand_augment) aug.rand_augment_options = mae::RandAugmentOptions::parse(a.aa);
  aug.erasing.prob = a.reprob;
  a.ft.mixup.label_smoothing = a.smoothing;  // timm's Mixup carries the smoothing into the targets
  mae::BatchLoader train_loader(train.dataset(), S, a.ft.batch_size, a.ft.seed, aug, norm.mean, norm.stddev);
  train_loader.set_shuffle_buffer(a.data.shuffle_buffer);
  mae::BatchLoader val_loader(val.dataset(), S, 1, a.ft.seed, {}, norm.mean, norm.stddev);
  const std::vector<int> yval = val.labels();
  const double cp = crop_pct(a.data, S);
  auto evaluate = [&] {
    const auto r = mae::evaluate(model, val.dataset().size(), yval.data(), evaluation_images(val_loader, cp));
    return mae::EvalResult{r.top1(), r.mean_loss(), r.count()};
  };
  mae::write_classes(a.ft.metadata, classes);
  if (!a.init.empty()) a.ft.metadata[mae::keys::init] = a.init;
  if (!a.resume.empty())  // a resumed run writes the same files as an uninterrupted one
    if (const auto init = mae::metadata_value(metadata_of(a.resume), mae::keys::init))
      a.ft.metadata[mae::keys::init] = *init;
  mae::Finetuner<Vit> tuner(model, train_loader, a.ft, evaluate);
  if (!a.resume.empty()) {
    tuner.resume(a.resume);
    std::printf("resumed from %s at step %lld\n", a.resume.c_str(), static_cast<long long>(tuner.steps_done()));
  }
  char clip_buf[32] = "off";
  if (a.ft.clip_grad > 0) std::snprintf(clip_buf, sizeof clip_buf, "%g", a.ft.clip_grad);
  const std::string clip = clip_buf;
  std::printf(
      "%s on %s: %lld images, %zu classes, %lld steps/epoch, %d epochs, global batch %lld, lr %.3g, layer decay "
      "%.2f, drop path %.2f, smoothing %.2f, crop scale [%.2f, 1], RandAugment %s, reprob %.2f, mixup %.2f, cutmix "
      "%.2f, clip_grad %s, %s\n",
      model.name().c_str(), train.dataset().name().c_str(), static_cast<long long>(train.dataset().size()),
      classes.size(), static_cast<long long>(tuner.steps_per_epoch()), a.ft.epochs,
      static_cast<long long>(a.ft.global_batch()), a.ft.effective_lr(), a.ft.layer_decay, vo.drop_path,
      vo.label_smoothing, aug.random_resized_crop ? aug.scale_min : 1.0, a.aa.c_str(), a.reprob, a.ft.mixup.mixup_alpha,
      a.ft.mixup.cutmix_alpha, clip.c_str(), processes(a.ft.parallel).c_str());
  std::fflush(stdout);
  Stopwatch total;
  mae::stop_on_signals();  // SIGTERM, SIGINT, SIGUSR1: finish the step, checkpoint, exit kExitStopped
  const bool finished = tuner.run([&](int epoch, const mae::EvalResult& r) {
    std::printf("epoch %d: val accuracy %.2f%%, val loss %.4f (%.0f s so far)\n", epoch + 1, 100 * r.accuracy, r.loss,
                total.seconds());
    std::fflush(stdout);
  });
  if (tuner.stop_signal() != 0)
    return report_stop(tuner.stop_signal(), tuner.steps_done(), tuner.checkpoint_path(), a.ft.parallel.rank == 0);
  if (!finished)
    std::printf("stopped after %lld steps (--max-steps): checkpoint %s\n", static_cast<long long>(tuner.steps_done()),
                tuner.checkpoint_path().c_str());
  else if (!tuner.evaluations().empty())
    std::printf("fine-tuning (%s): VAL ACCURACY %.2f%% after %d epochs, %.0f s\n",
                a.init.empty() && a.resume.empty() ? "from scratch" : "from a checkpoint",
                100 * tuner.evaluations().back().accuracy, a.ft.epochs, total.seconds());
  std::printf("classifier: %s\n", tuner.classifier_path().c_str());
  return 0;
}

}  // namespace mae_tool
