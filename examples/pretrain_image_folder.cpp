// Pretrains an MAE on your own pictures: every PNG/JPEG/BMP/GIF/TGA/PNM file under a
// directory, converted to RGB and to the model's 32x32 size by the random resized crop.
// Reconstructions are drawn from the first images of the folder.
//
//   ./build/release/examples/pretrain_image_folder --images ~/Pictures --out runs/pictures
#include "pretrain_common.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Pretrain a Masked Autoencoder (ViT, 32x32x3, patch 4) on a folder of images"};
  PretrainCli cli;
  cli.train.epochs = 20;
  cli.train.batch_size = 32;
  cli.train.lr = 1e-3;
  cli.train.warmup_epochs = 2;
  cli.train.out_dir = "runs/image_folder";
  cli.norm_pix = true;
  std::string dir;
  app.add_option("--images", dir, "directory with the images (searched recursively)")->required();
  cli.add_to(app);
  CLI11_PARSE(app, argc, argv);
  try {
    using Model = mae::mae_vit_tiny_32x32_rgb;
    mae::ImageFolder images(dir, Model::C, /*max_side=*/4 * Model::Config::img_size);
    return run_pretraining<Model>(cli, images, images);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
