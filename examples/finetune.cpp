// Fine-tuning on Fashion-MNIST (main_finetune.py): the whole ViT classifier trained end to
// end from an MAE checkpoint (or from the MAE initialization without --checkpoint), with
// layer-wise lr decay, warmup + cosine, label smoothing, drop path and the pretraining
// augmentation (RandomResizedCrop + horizontal flip). Evaluates on the test set after every
// epoch; writes classifier.safetensors, log.csv and eval.csv.
//
//   ./build/release/examples/finetune --checkpoint runs/mae/mae_final.safetensors --epochs 4
//   ./build/release/examples/finetune --epochs 4        # from scratch
#include "downstream_common.hpp"

#include <mae/finetune.hpp>

#include "cli_common.hpp"

#include <CLI/CLI.hpp>

int main(int argc, char** argv) {
  CLI::App app{"Fine-tune a ViT classifier from an MAE encoder (28x28x1 toy preset) on Fashion-MNIST"};
  std::string checkpoint, data_dir = mae::FashionMnist::kDefaultDir, pool = "avg";
  mae::FinetuneOptions ft;
  ft.epochs = 4, ft.batch_size = 128, ft.blr = 2e-3, ft.warmup_epochs = 0.5, ft.out_dir = "runs/finetune";
  Vit::Options vo;
  vo.num_classes = 10, vo.drop_path = 0.1, vo.label_smoothing = 0.1;
  mae::AugmentOptions aug;
  aug.scale_min = 0.5;
  int threads = 0;
  mae::Index limit = 0, test_limit = 0;
  app.add_option("--checkpoint", checkpoint,
                 "MAE checkpoint (pretrain_fashion_mnist's mae_final.safetensors); none: from scratch");
  app.add_option("--pool", pool, "avg (fc_norm of the patch-token mean, the reference's default) or cls")
      ->check(CLI::IsMember({"cls", "avg"}));
  add_schedule_options(app, ft, "base learning rate: lr = blr * batch / 256");
  app.add_option("--layer-decay", ft.layer_decay, "layer-wise lr decay (1: none)")->check(CLI::Range(0.0, 1.0));
  app.add_option("--drop-path", vo.drop_path, "drop path rate of the last block")->check(CLI::Range(0.0, 0.99));
  app.add_option("--smoothing", vo.label_smoothing, "label smoothing")->check(CLI::Range(0.0, 0.99));
  app.add_option("--crop-min", aug.scale_min, "RandomResizedCrop's smallest area fraction (1: no crop)")
      ->check(CLI::Range(0.05, 1.0));
  app.add_option("--data", data_dir, "directory of the Fashion-MNIST *.gz files");
  app.add_option("--limit", limit, "use only the first N training images (0: all)")->check(CLI::NonNegativeNumber);
  app.add_option("--test-limit", test_limit, "use only the first N test images (0: all)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-steps", ft.max_steps, "stop after this many steps");
  add_run_options(app, ft.seed, threads, ft.out_dir, ft.progress,
                  "seed of the head, data order, augmentation and drop path",
                  "output directory: classifier.safetensors, log.csv, eval.csv");
  CLI11_PARSE(app, argc, argv);
  try {
    if (threads > 0) mae::set_num_threads(threads);
    Stopwatch total;
    vo.global_pool = pool == "avg";
    vo.seed = ft.seed;
    Vit model(vo);
    start_encoder(model, checkpoint);  // a bad checkpoint stops here, before the data is read
    Splits data(data_dir, limit, test_limit);
    aug.random_resized_crop = aug.scale_min < 1.0;
    mae::BatchLoader train_loader(data.train, Vit::Config::img_size, ft.batch_size, ft.seed, aug);
    mae::BatchLoader test_loader(data.test, Vit::Config::img_size, 1, ft.seed, {}, train_loader.mean(),
                                 train_loader.stddev());
    const std::vector<int> ytest = labels_of(data.test);
    auto evaluate = [&] {
      return mae::evaluate_classifier(model, data.test.size(), ytest.data(),
                                      [&](mae::Index i, float* d) { test_loader.plain(i, d); });
    };
    mae::Finetuner<Vit> tuner(model, train_loader, ft, evaluate);
    std::printf(
        "%s on %s: %lld images, %lld steps/epoch, %d epochs, lr %.3g, layer decay %.2f, drop path %.2f, "
        "smoothing %.2f, crop scale [%.2f, 1], %d threads\n",
        model.name().c_str(), data.train.name().c_str(), static_cast<long long>(data.train.size()),
        static_cast<long long>(tuner.steps_per_epoch()), ft.epochs, ft.effective_lr(), ft.layer_decay, vo.drop_path,
        vo.label_smoothing, aug.random_resized_crop ? aug.scale_min : 1.0, mae::max_threads());
    std::fflush(stdout);
    const bool finished = tuner.run([&](int epoch, const mae::EvalResult& r) {
      std::printf("epoch %d: test accuracy %.2f%%, test loss %.4f (%.0f s so far)\n", epoch + 1, 100 * r.accuracy,
                  r.loss, total.seconds());
      std::fflush(stdout);
    });
    const auto& ev = tuner.evaluations();
    if (!finished) {
      const auto r = evaluate();
      std::printf("stopped after %lld steps (--max-steps): test accuracy %.2f%%\n",
                  static_cast<long long>(ft.max_steps), 100 * r.accuracy);
    } else {
      std::printf("fine-tuning (%s): TEST ACCURACY %.2f%% after %d epochs, %.0f s in all\n",
                  checkpoint.empty() ? "from scratch" : "from MAE", 100 * ev.back().accuracy, ft.epochs,
                  total.seconds());
    }
    if (!ev.empty() && !ft.out_dir.empty()) std::printf("classifier: %s\n", tuner.checkpoint_path().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
