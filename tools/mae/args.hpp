// The `mae` program's arguments, one struct per subcommand, and the options they share.
// Parsing (CLI11) is in main.cpp; the commands, templated on the model, in commands/.
#pragma once

#include <mae/datasets/fashion_mnist.hpp>
#include <mae/training/finetune.hpp>
#include <mae/training/linear_probe.hpp>
#include <mae/training/pretrain.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace mae_tool {

using mae::Index;

// Where the images come from: Debian's Fashion-MNIST, a folder in torchvision's ImageFolder
// layout (DIR/train/<class>/*, DIR/val/<class>/*), or WebDataset tar shards (a brace pattern,
// one .tar, a directory of them, or DIR/train/*.tar + DIR/val/*.tar).
struct DataArgs {
  std::string data = "fashion-mnist";
  std::string val_data;         // the validation split's shards or folder, when not under --data
  Index shuffle_buffer = 1000;  // shards: samples mixed across the stream (1: none)
  std::string fashion_mnist_dir = mae::FashionMnist::kDefaultDir;
  Index limit = 0, val_limit = 0;      // evenly spaced subsets; 0: all
  Index max_side = 0;                  // shrink larger images first; 0: 4 x the model's size
  std::int64_t max_pixels = 64000000;  // refuse larger images
  bool verify = false;                 // decode every image once before training (--verify)
  std::string index;                   // the image index file (--index); "": the command's default
  std::string normalize = "auto";      // auto (checkpoint's, else dataset), dataset, imagenet
  double crop_pct = 0;                 // evaluation: resize to S / crop_pct, center crop; 0: reference
  bool fashion_mnist() const { return data == "fashion-mnist"; }
};

struct RunArgs {
  std::uint64_t seed = 0;
  int threads = 0;
  bool progress = true;
  Index global_batch = 0;  // pretrain, finetune: --global-batch (0: --batch per process)
};

// This process's part when `mae` runs under mpirun (main.cpp fills it; one process otherwise):
// pretrain and fine-tune are then data parallel, the other commands refuse.
inline mae::DataParallel& process_group() {
  static mae::DataParallel p;
  return p;
}

struct PretrainArgs {
  DataArgs data;
  RunArgs run;
  mae::TrainOptions train;
  bool norm_pix = false;
  bool bf16 = false;       // bf16 mixed precision (the products' operands; fp32 master weights)
  std::string init;        // encoder weights to start from (a fresh decoder)
  std::string resume;      // a checkpoint.safetensors of this run
  bool overwrite = false;  // replace the run in --out (its files are removed first)
  int figure_images = 8;
};

struct FinetuneArgs {
  DataArgs data;
  RunArgs run;
  mae::FinetuneOptions ft;
  std::string init, resume, pool = "avg";
  bool overwrite = false;
  double drop_path = 0.1, smoothing = 0.1, crop_min = 0.08;
  bool bf16 = false;
  std::string aa = "rand-m9-mstd0.5-inc1";  // RandAugment (timm's spec), or "none"
  double reprob = 0.25;                     // random erasing probability
};

struct ProbeArgs {
  DataArgs data;
  RunArgs run;
  mae::ProbeOptions probe;
  std::string checkpoint, pool = "cls", out = "runs/probe";
  bool raw_pixels = false, overwrite = false;
  int block = 0;
  bool warmup_scaled = false;  // --warmup-epochs not given and the recipe's outlasts --epochs
};

struct EvalArgs {
  DataArgs data;
  RunArgs run;
  std::string checkpoint, split = "val", out;
  Index batch = 128;
};

struct ShardsArgs {
  std::string data, out;
  Index per_shard = 1000;
  std::int64_t max_pixels = 64000000;
  RunArgs run;  // the seed of the order
};

struct PredictArgs {
  DataArgs data;  // max_side, max_pixels, crop_pct
  RunArgs run;
  std::string checkpoint, out = "predictions.csv";
  std::vector<std::string> inputs;
  Index topk = 5, batch = 128;
};

// Features of an encoder (an MAE checkpoint, a classifier, or none: random init).
struct FeatureArgs {
  std::string checkpoint, pool = "cls";  // cls, avg, tokens (extract)
  int block = 0;                         // 1..depth: that block's output; 0: the final norm's
};

struct ExtractArgs {
  DataArgs data;
  RunArgs run;
  FeatureArgs features;
  std::string split = "train", out = "features.safetensors";
  Index batch = 128;
};

struct KnnArgs {
  DataArgs data;
  RunArgs run;
  FeatureArgs features;
  Index k = 20, batch = 128;
  double temperature = 0.07;
};

struct ReconstructArgs {
  DataArgs data;
  RunArgs run;
  std::string checkpoint, split = "val", out = "reconstruction.png";
  int images = 8;
  double mask_ratio = 0.75;
};

struct ExportArgs {
  std::string checkpoint, format = "hf", out;
  std::string encoder;  // a linear probe's encoder (default: the one its features came from)
  bool overwrite = false;
};

struct AttentionArgs {
  DataArgs data;
  RunArgs run;
  std::string checkpoint, split = "val", out = "attention.png", maps;
  int images = 8;
};

}  // namespace mae_tool
