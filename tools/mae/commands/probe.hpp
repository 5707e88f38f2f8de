// mae probe: a linear probe of a frozen encoder (main_linprobe.py): BatchNorm + linear, LARS.
#pragma once

#include "common.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>

namespace mae_tool {

template <class Cfg>
int probe(ProbeArgs a) {
  constexpr Index S = Cfg::img_size, C = Cfg::in_chans, kPixels = C * S * S;
  set_threads(a.run);
  a.probe.seed = a.run.seed;
  if (a.warmup_scaled)
    std::printf("warmup: %.3g epochs (the recipe's 10 of 90, scaled to --epochs %d)\n", a.probe.warmup_epochs,
                a.probe.epochs);
  // the schedule is checked before the encoding, which may take long
  mae::LrSchedule{mae::LrSchedule::scaled(a.probe.blr, a.probe.batch_size), 0.0, a.probe.warmup_epochs,
                  static_cast<double>(a.probe.epochs)}
      .check();
  const auto owned = claim_run_directory(a.out, "", a.overwrite, true, /*resumable=*/false);
  Stopwatch total;
  std::optional<mae::FeatureExtractor<Cfg>> encoder;
  if (!a.raw_pixels) encoder.emplace(feature_extractor<Cfg>(FeatureArgs{a.checkpoint, a.pool, a.block}, a.run.seed));
  Startup start(a.data, a.out + "/image_index.txt");
  Split train(a.data, "train", C, S, true, start), val(a.data, "val", C, S, true, start);
  require_same_classes(train, val);
  train.verify(a.data.verify), val.verify(a.data.verify);
  const auto norm =
      normalization(a.data, encoder ? encoder->metadata() : mae::Metadata{}, train.dataset(), a.checkpoint, start);
  start.save();
  mae::BatchLoader tl(train.dataset(), S, 1, 0, {}, norm.mean, norm.stddev);
  mae::BatchLoader vl(val.dataset(), S, 1, 0, {}, norm.mean, norm.stddev);
  const Index nt = train.dataset().size(), nv = val.dataset().size(), K = static_cast<Index>(train.classes().size());
  const std::vector<int> yt = train.labels(), yv = val.labels();
  const double cp = crop_pct(a.data, S);
  Stopwatch enc;
  std::vector<float> ft, fv;
  if (a.raw_pixels) {
    std::printf("features: raw pixels (%lld)\n", static_cast<long long>(kPixels));
    ft.resize(static_cast<std::size_t>(nt * kPixels)), fv.resize(static_cast<std::size_t>(nv * kPixels));
#pragma omp parallel for schedule(static)
    for (Index i = 0; i < nt; ++i) tl.evaluation(i, ft.data() + i * kPixels, cp);
#pragma omp parallel for schedule(static)
    for (Index i = 0; i < nv; ++i) vl.evaluation(i, fv.data() + i * kPixels, cp);
  } else {
    std::printf("features: %s, %lld + %lld images...\n", encoder->description().c_str(), static_cast<long long>(nt),
                static_cast<long long>(nv));
    std::fflush(stdout);
    ft = encoder->encode(nt, evaluation_images(tl, cp));
    fv = encoder->encode(nv, evaluation_images(vl, cp));
  }
  const Index F = static_cast<Index>(ft.size()) / nt;
  const double encode_s = enc.seconds();
  std::printf("encoded in %.1f s (%lld features per image)\n", encode_s, static_cast<long long>(F));
  // the probe: BatchNorm (no affine) + linear, LARS, warmup + cosine (main_linprobe.py)
  mae::LinearProbe<float> probe(F, K, a.probe.seed);
  // LARS moves a weight by about lr * 0.001 of its norm per step: the reference's recipe
  // (blr 0.1, batch 4096, 90 epochs) is sized for ImageNet's 10^4 steps
  const Index pb = std::min(a.probe.batch_size, nt), steps = static_cast<Index>(a.probe.epochs) * (nt / pb);
  const double probe_lr = a.probe.blr * static_cast<double>(pb) / 256;
  if (static_cast<double>(steps) * probe_lr < 1000)
    std::fprintf(stderr,
                 "note: %lld LARS steps at lr %.3g is little for the probe to move (the reference's recipe is sized "
                 "for ImageNet); on a small folder try --batch 256 --blr 20, or more --epochs\n",
                 static_cast<long long>(steps), probe_lr);
  std::ofstream log(a.out + "/log.csv");
  log << "epoch,train_loss,lr,val_accuracy,val_loss\n";
  Stopwatch train_time;
  const mae::ProbeEpoch last = mae::fit_linear_probe(
      probe, ft.data(), yt.data(), nt, fv.data(), yv.data(), nv, a.probe, [&](const mae::ProbeEpoch& ep) {
        log << ep.epoch << ',' << ep.train_loss << ',' << ep.lr << ',' << ep.test_accuracy << ',' << ep.test_loss
            << std::endl;
        if (a.run.progress && (ep.epoch % 10 == 0 || ep.epoch == a.probe.epochs)) {
          std::printf("epoch %d/%d  train loss %.4f  lr %.3g  val accuracy %.2f%%\n", ep.epoch, a.probe.epochs,
                      ep.train_loss, ep.lr, 100 * ep.test_accuracy);
          std::fflush(stdout);
        }
      });
  mae::Metadata probe_meta{{mae::keys::features, a.raw_pixels ? "raw_pixels" : encoder->description()}};
  mae::write_classes(probe_meta, train.classes());
  probe.save(a.out + "/probe.safetensors", probe_meta);
  const auto tr = probe.evaluate(ft.data(), yt.data(), nt);
  std::printf(
      "linear probe (%s): train accuracy %.2f%%, VAL ACCURACY %.2f%% (%lld images); encode %.0f s, train %.0f s, "
      "total %.0f s\n",
      a.raw_pixels ? "raw pixels" : (a.checkpoint.empty() ? "random-init encoder" : "MAE encoder"), 100 * tr.first,
      100 * last.test_accuracy, static_cast<long long>(nv), encode_s, train_time.seconds(), total.seconds());
  return 0;
}

}  // namespace mae_tool
