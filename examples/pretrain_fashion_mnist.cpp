// Pretrains the 28x28 grayscale toy MAE on Fashion-MNIST (Debian's dataset-fashion-mnist),
// writing a checkpoint, log.csv, loss.png and a reconstruction grid of test images after
// every epoch.
//
//   ./build/release/examples/pretrain_fashion_mnist --out runs/fmnist
//   ./build/release/examples/pretrain_fashion_mnist --help
#include "pretrain_common.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Pretrain a Masked Autoencoder (ViT, 28x28x1, patch 4) on Fashion-MNIST"};
  PretrainCli cli;
  cli.train.epochs = 2;
  cli.train.batch_size = 128;
  cli.train.blr = 1.5e-4;
  cli.train.lr = 1.5e-3;
  cli.train.warmup_epochs = 0.5;
  cli.train.out_dir = "runs/fashion_mnist";
  cli.norm_pix = false;
  std::string data_dir = mae::FashionMnist::kDefaultDir;
  mae::Index limit = 0;
  app.add_option("--data", data_dir, "directory of the Fashion-MNIST *.gz files");
  app.add_option("--limit", limit, "use only the first N training images (0: all 60000)")
      ->check(CLI::NonNegativeNumber);
  cli.add_to(app);
  CLI11_PARSE(app, argc, argv);
  try {
    mae::FashionMnist train(data_dir, "train"), test(data_dir, "t10k");
    if (limit > 0) train.truncate(limit);
    return run_pretraining<mae::mae_vit_tiny_28x28_gray>(cli, train, test);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
