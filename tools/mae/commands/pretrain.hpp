// mae pretrain: an MAE on a folder or Fashion-MNIST (main_pretrain.py), with a checkpoint,
// log.csv, loss.png and a reconstruction figure after every epoch.
#pragma once

#include "common.hpp"

#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

namespace mae_tool {

template <class Cfg>
int pretrain(PretrainArgs a) {
  using Model = mae::MaskedAutoencoder<Cfg>;
  constexpr Index S = Cfg::img_size, C = Cfg::in_chans;
  set_threads(a.run);
  a.train.seed = a.run.seed, a.train.progress = a.run.progress, a.train.parallel = process_group();
  a.train.batch_size = per_process_batch(a.run, a.train.batch_size, a.train.parallel);
  const bool first = a.train.parallel.rank == 0;  // the process that writes
  const std::string out = a.train.out_dir;
  const auto owned = claim_run_directory(out, a.resume, a.overwrite, first);
  Model model(typename Model::Options{a.norm_pix, a.train.seed, precision_of(a.bf16)});
  if (!a.init.empty() && a.resume.empty()) {  // a bad file stops here, before the data is read
    model.load_encoder(a.init);
    std::printf("encoder: %s (decoder freshly initialized)\n", a.init.c_str());
  }
  Startup start(a.data, out + "/image_index.txt", a.train.parallel);
  Split train(a.data, "train", C, S, /*labelled=*/false, start);
  train.verify(a.data.verify);
  const bool has_val = a.data.fashion_mnist() || !a.data.val_data.empty() ||
                       (!mae::is_shard_spec(a.data.data) && std::filesystem::is_directory(a.data.data + "/val"));
  std::unique_ptr<Split> val;
  if (has_val) val = std::make_unique<Split>(a.data, "val", C, S, /*labelled=*/false, start);
  const mae::ImageDataset& vis_set = val ? val->dataset() : train.dataset();
  const std::string& ref = a.resume.empty() ? a.init : a.resume;
  const auto norm = normalization(a.data, metadata_of(ref), train.dataset(), ref, start);
  start.save();
  print(norm);

  mae::BatchLoader loader(train.dataset(), S, a.train.batch_size, a.train.seed, {}, norm.mean, norm.stddev);
  loader.set_shuffle_buffer(a.data.shuffle_buffer);
  mae::BatchLoader vis_loader(vis_set, S, 1, a.train.seed, {}, norm.mean, norm.stddev);
  const Index nv = std::min<Index>(a.figure_images, vis_set.size());
  std::vector<typename Model::Scalar> vis(static_cast<std::size_t>(nv * C * S * S));
  {
    std::vector<float> f(vis.size());
    for (Index i = 0; i < nv; ++i) vis_loader.plain(i, f.data() + i * C * S * S);
    std::copy(f.begin(), f.end(), vis.begin());
  }
  mae::Trainer<Model> trainer(model, loader, a.train);
  if (!a.resume.empty()) {
    trainer.resume(a.resume);
    std::printf("resumed from %s at step %lld\n", a.resume.c_str(), static_cast<long long>(trainer.steps_done()));
  }
  std::printf(
      "%s on %s: %lld images, %lld steps/epoch, %d epochs, global batch %lld%s, lr %.3g, %s, norm_pix_loss %s, %s "
      "products\n",
      Cfg::name().c_str(), train.dataset().name().c_str(), static_cast<long long>(train.dataset().size()),
      static_cast<long long>(trainer.steps_per_epoch()), a.train.epochs,
      static_cast<long long>(a.train.batch_size * a.train.parallel.ranks),
      a.train.accum_iter > 1 ? (" x " + std::to_string(a.train.accum_iter) + " accumulated").c_str() : "",
      a.train.effective_lr(), processes(a.train.parallel).c_str(), a.norm_pix ? "on" : "off", a.bf16 ? "bf16" : "fp32");
  std::fflush(stdout);
  Stopwatch t;
  auto figures = [&](int epoch) {
    if (!first) return;
    char name[64];
    std::snprintf(name, sizeof name, "/reconstruction_epoch%03d.png", epoch + 1);
    mae::save_reconstruction_grid(out + name, model, vis_loader, vis, nv, a.train.mask_ratio, 2024);
    std::filesystem::copy_file(out + name, out + "/reconstruction.png",
                               std::filesystem::copy_options::overwrite_existing);
    mae::plot_loss_curve(trainer.log_path(), out + "/loss.png");
    std::printf("epoch %d: checkpoint %s, figures %s%s, loss.png\n", epoch + 1, trainer.checkpoint_path().c_str(),
                out.c_str(), name);
    std::fflush(stdout);
  };
  mae::stop_on_signals();  // SIGTERM, SIGINT, SIGUSR1: finish the step, checkpoint, exit kExitStopped
  const bool finished = trainer.run(figures);
  if (trainer.stop_signal() != 0)
    return report_stop(trainer.stop_signal(), trainer.steps_done(), trainer.checkpoint_path(), first);
  const auto& h = trainer.history();
  if (!h.empty())
    std::printf("%s after %lld steps in %.0f s: first loss %.4f, last loss %.4f, %.0f images/s\n",
                finished ? "done" : "stopped (--max-steps)", static_cast<long long>(trainer.steps_done()), t.seconds(),
                h.front().loss, h.back().loss, h.back().images_per_s);
  if (first) std::printf("weights: %s\n", trainer.weights_path().c_str());
  return 0;
}

}  // namespace mae_tool
