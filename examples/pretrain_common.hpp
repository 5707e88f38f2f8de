// Shared by the pretraining examples: command-line options, the training run with a
// reconstruction grid and a loss plot after every epoch, and the closing summary.
#pragma once

#include <mae/data.hpp>
#include <mae/model.hpp>
#include <mae/train.hpp>

#include "cli_common.hpp"

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

struct PretrainCli {
  mae::TrainOptions train;
  bool norm_pix = false;
  int threads = 0;
  std::string resume;
  int figure_images = 8;

  void add_to(CLI::App& app) {
    add_schedule_options(app, train, "base learning rate: lr = blr * batch * accum / 256");
    app.add_option("--accum", train.accum_iter, "micro-batches per optimizer step")->check(CLI::Range(1, 1 << 20));
    app.add_option("--mask-ratio", train.mask_ratio, "fraction of patches removed")->check(CLI::Range(0.0, 0.999));
    app.add_flag("--norm-pix-loss,!--no-norm-pix-loss", norm_pix, "per-patch normalized pixel targets");
    add_run_options(app, train.seed, threads, train.out_dir, train.progress,
                    "seed of initialization, data order, augmentation and masking",
                    "output directory: checkpoint, log.csv, loss.png, reconstruction PNGs");
    app.add_option("--resume", resume, "continue from this checkpoint");
    app.add_option("--max-steps", train.max_steps, "stop (with a checkpoint) after this many micro-batches in all");
    app.add_option("--figure-images", figure_images, "images in the reconstruction grid")->check(CLI::Range(1, 64));
  }
};

// Pretrains `Model` on `train_set`, drawing reconstructions of the first images of `vis_set`.
template <class Model>
int run_pretraining(const PretrainCli& cli, const mae::ImageDataset& train_set, const mae::ImageDataset& vis_set) {
  if (cli.threads > 0) mae::set_num_threads(cli.threads);
  std::filesystem::create_directories(cli.train.out_dir);
  Model model(typename Model::Options{cli.norm_pix, cli.train.seed});
  mae::BatchLoader loader(train_set, Model::Config::img_size, cli.train.batch_size, cli.train.seed);
  // the figure's images: the validation set's first images, normalized with the training statistics
  mae::BatchLoader vis_loader(vis_set, Model::Config::img_size, 1, cli.train.seed, {}, loader.mean(), loader.stddev());
  const mae::Index nv = std::min<mae::Index>(cli.figure_images, vis_set.size()), Sz = Model::Config::img_size;
  std::vector<float> vis(static_cast<std::size_t>(nv * Model::C * Sz * Sz));
  for (mae::Index i = 0; i < nv; ++i) vis_loader.plain(i, vis.data() + i * Model::C * Sz * Sz);
  std::vector<typename Model::Scalar> vis_s(vis.begin(), vis.end());

  mae::Trainer<Model> trainer(model, loader, cli.train);
  if (!cli.resume.empty()) {
    trainer.resume(cli.resume);
    std::printf("resumed from %s at step %lld\n", cli.resume.c_str(), static_cast<long long>(trainer.steps_done()));
  }
  std::printf("%s on %s: %lld images, %lld steps/epoch, %d epochs, lr %.3g, %d threads, norm_pix_loss %s\n",
              Model::Config::name().c_str(), train_set.name().c_str(), static_cast<long long>(train_set.size()),
              static_cast<long long>(trainer.steps_per_epoch()), cli.train.epochs, cli.train.effective_lr(),
              mae::max_threads(), cli.norm_pix ? "on" : "off");
  const std::string out = cli.train.out_dir;
  const auto t0 = std::chrono::steady_clock::now();
  auto figures = [&](int epoch) {
    char name[64];
    std::snprintf(name, sizeof name, "/reconstruction_epoch%03d.png", epoch + 1);
    mae::save_reconstruction_grid(out + name, model, vis_loader, vis_s, nv, cli.train.mask_ratio, 2024);
    std::filesystem::copy_file(out + name, out + "/reconstruction.png",
                               std::filesystem::copy_options::overwrite_existing);
    mae::plot_loss_curve(trainer.log_path(), out + "/loss.png");
    std::printf("epoch %d: checkpoint %s, figures %s%s, loss.png\n", epoch + 1, trainer.checkpoint_path().c_str(),
                out.c_str(), name);
    std::fflush(stdout);
  };
  try {
    const bool finished = trainer.run(figures);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto& h = trainer.history();
    if (!h.empty())
      std::printf("%s after %lld steps in %.0f s: first loss %.4f, last loss %.4f, %.0f images/s\n",
                  finished ? "done" : "stopped (--max-steps)", static_cast<long long>(trainer.steps_done()), secs,
                  h.front().loss, h.back().loss, h.back().images_per_s);
    model.save(out + "/mae_final.safetensors");
    std::printf("weights: %s/mae_final.safetensors\n", out.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\n%s\n", e.what());
    return 1;
  }
  return 0;
}
