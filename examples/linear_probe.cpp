// Linear probing on Fashion-MNIST (main_linprobe.py): a frozen encoder -> BatchNorm without
// affine -> linear classifier, trained with LARS. The frozen encoder's features of the
// un-augmented images are computed once and reused every epoch (the reference re-encodes
// augmented crops every epoch). Also probes raw pixels (--raw-pixels: logistic regression).
//
//   ./build/release/examples/linear_probe --checkpoint runs/mae/mae_final.safetensors
//   ./build/release/examples/linear_probe                 # randomly initialized encoder
//   ./build/release/examples/linear_probe --raw-pixels    # logistic regression on pixels
#include "downstream_common.hpp"

#include <mae/linear_probe.hpp>
#include <mae/optim.hpp>

#include "cli_common.hpp"

#include <CLI/CLI.hpp>

#include <filesystem>
#include <fstream>
#include <numeric>

int main(int argc, char** argv) {
  CLI::App app{"Linear probe of an MAE encoder (28x28x1 toy preset) on Fashion-MNIST"};
  std::string checkpoint, data_dir = mae::FashionMnist::kDefaultDir, out = "runs/linear_probe", pool = "cls";
  bool raw_pixels = false, progress = true;
  int threads = 0, block = -1;
  mae::Index limit = 0, test_limit = 0;
  mae::ProbeOptions po;
  app.add_option("--checkpoint", checkpoint,
                 "MAE checkpoint (pretrain_fashion_mnist's mae_final.safetensors); none: random init");
  app.add_flag("--raw-pixels", raw_pixels, "probe the normalized pixels instead of an encoder (logistic regression)");
  app.add_option("--pool", pool,
                 "features: cls (norm(x)[:, 0], the reference's default) or avg (fc_norm of the patch-token mean)")
      ->check(CLI::IsMember({"cls", "avg"}));
  app.add_option("--block", block, "probe the output of this block instead (1..depth; pooled by --pool, no norm)");
  app.add_option("--epochs", po.epochs, "epochs")->check(CLI::Range(1, 1000000));
  app.add_option("--batch", po.batch_size, "batch size")->check(CLI::Range(2, 1 << 20));
  app.add_option("--blr", po.blr, "base learning rate: lr = blr * batch / 256");
  app.add_option("--warmup-epochs", po.warmup_epochs, "linear warmup, in epochs");
  app.add_option("--weight-decay", po.weight_decay, "LARS weight decay");
  app.add_option("--data", data_dir, "directory of the Fashion-MNIST *.gz files");
  app.add_option("--limit", limit, "use only the first N training images (0: all)")->check(CLI::NonNegativeNumber);
  app.add_option("--test-limit", test_limit, "use only the first N test images (0: all)")
      ->check(CLI::NonNegativeNumber);
  add_run_options(app, po.seed, threads, out, progress,
                  "seed of the encoder's random init, the head and the data order",
                  "output directory: log.csv, probe.safetensors");
  CLI11_PARSE(app, argc, argv);
  try {
    if (threads > 0) mae::set_num_threads(threads);
    std::filesystem::create_directories(out);
    Stopwatch total;
    Splits data(data_dir, limit, test_limit);
    constexpr mae::Index Sz = Vit::Config::img_size, kPixels = Vit::C * Sz * Sz;
    // normalization: the training set's statistics, for both splits
    mae::BatchLoader train_loader(data.train, Sz, 2, po.seed, {});
    mae::BatchLoader test_loader(data.test, Sz, 2, po.seed, {}, train_loader.mean(), train_loader.stddev());
    const std::vector<int> ytrain = labels_of(data.train), ytest = labels_of(data.test);
    const mae::Index ntrain = data.train.size(), ntest = data.test.size();
    const auto train_image = [&](mae::Index i, float* d) { train_loader.plain(i, d); };
    const auto test_image = [&](mae::Index i, float* d) { test_loader.plain(i, d); };

    // --- features, computed once
    Stopwatch enc;
    std::vector<float> ftrain, ftest;
    if (raw_pixels) {
      std::printf("features: raw pixels (%lld)\n", static_cast<long long>(kPixels));
      ftrain.resize(ntrain * kPixels), ftest.resize(ntest * kPixels);
      for (mae::Index i = 0; i < ntrain; ++i) train_image(i, ftrain.data() + i * kPixels);
      for (mae::Index i = 0; i < ntest; ++i) test_image(i, ftest.data() + i * kPixels);
    } else {
      Vit::Options vo;
      vo.num_classes = 10, vo.global_pool = pool == "avg", vo.seed = po.seed;
      Vit model(vo);
      start_encoder(model, checkpoint);
      if (block == 0 || block > Vit::kDepth) throw mae::Error("--block must be in 1.." + std::to_string(Vit::kDepth));
      const bool avg = pool == "avg";
      auto feature = [&](const Vit& m) {
        if (block < 0) return Eigen::MatrixXf(m.features().template cast<float>());
        const auto x = m.block_output(block);  // (B*(1+L), D)
        const mae::Index B = x.rows() / Vit::T;
        Eigen::MatrixXf f(B, Vit::D);
        for (mae::Index n = 0; n < B; ++n)
          f.row(n) = avg ? Eigen::RowVectorXf(x.middleRows(n * Vit::T + 1, Vit::L).colwise().mean())
                         : Eigen::RowVectorXf(x.row(n * Vit::T));
        return f;
      };
      std::printf("features: %s%s, %lld + %lld images...\n", avg ? "mean of patch tokens" : "cls token",
                  block < 0 ? (avg ? " + fc_norm" : " + norm") : (" of block " + std::to_string(block)).c_str(),
                  static_cast<long long>(ntrain), static_cast<long long>(ntest));
      std::fflush(stdout);
      ftrain = mae::encode_dataset(model, ntrain, 256, train_image, feature);
      ftest = mae::encode_dataset(model, ntest, 256, test_image, feature);
    }
    const mae::Index F = static_cast<mae::Index>(ftrain.size()) / ntrain;
    const double encode_s = enc.seconds();
    std::printf("encoded in %.1f s (%lld features per image)\n", encode_s, static_cast<long long>(F));

    // --- the probe: BatchNorm (no affine) + linear, LARS, warmup + cosine
    mae::LinearProbe<float> probe(F, 10, po.seed);
    std::ofstream log(out + "/log.csv");
    log << "epoch,train_loss,lr,test_accuracy,test_loss\n";
    Stopwatch train_time;
    const mae::ProbeEpoch last =
        mae::fit_linear_probe(probe, ftrain.data(), ytrain.data(), ntrain, ftest.data(), ytest.data(), ntest, po,
                              [&](const mae::ProbeEpoch& e) {
                                log << e.epoch << ',' << e.train_loss << ',' << e.lr << ',' << e.test_accuracy << ','
                                    << e.test_loss << std::endl;
                                if (progress && (e.epoch % 10 == 0 || e.epoch == po.epochs)) {
                                  std::printf("epoch %d/%d  train loss %.4f  lr %.3g  test accuracy %.2f%%\n", e.epoch,
                                              po.epochs, e.train_loss, e.lr, 100 * e.test_accuracy);
                                  std::fflush(stdout);
                                }
                              });
    probe.save(out + "/probe.safetensors",
               {{"mae.features", raw_pixels ? "raw_pixels" : pool},
                {"mae.encoder", raw_pixels ? "" : (checkpoint.empty() ? "random" : checkpoint)}});
    const auto tr = probe.evaluate(ftrain.data(), ytrain.data(), ntrain);
    std::printf(
        "linear probe (%s): train accuracy %.2f%%, TEST ACCURACY %.2f%% (%lld images); encode %.0f s, train %.0f s, "
        "total %.0f s\n",
        raw_pixels ? "raw pixels" : (checkpoint.empty() ? "random-init encoder" : "MAE encoder"), 100 * tr.first,
        100 * last.test_accuracy, static_cast<long long>(ntest), encode_s, train_time.seconds(), total.seconds());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
