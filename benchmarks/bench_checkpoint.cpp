// What a checkpoint costs a run: the time of Trainer::save_checkpoint() (the weights, AdamW's
// two moments and the run state serialized, written to a temporary file, fsync'd, renamed,
// linked as checkpoint.safetensors, the oldest beyond --keep removed) and its size, for the
// presets of bench_mae. A mid-epoch save (--save-every-steps, --save-every-minutes, a stop
// signal) costs this once; compare it with the step times of bench_mae.
//   ./build/release/benchmarks/bench_checkpoint [--benchmark_filter=...]
// The directory is MAE_BENCH_DIR if set (to measure the filesystem a run writes to), else the
// system's temporary directory.
#include <mae/mae.hpp>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace {
namespace fs = std::filesystem;
using mae::Index;

// Two flat gray images of the model's size and channels: the trainer needs a loader.
class FlatImages : public mae::ImageDataset {
 public:
  FlatImages(Index channels, Index side) : c_(channels), s_(side) {}
  Index size() const override { return 2; }
  Index channels() const override { return c_; }
  Index height(Index) const override { return s_; }
  Index width(Index) const override { return s_; }
  void load(Index i, float* out) const override { std::fill_n(out, c_ * s_ * s_, 0.25f + 0.5f * i); }
  std::string name() const override { return "flat"; }

 private:
  Index c_, s_;
};

template <class Cfg>
void BM_save_checkpoint(benchmark::State& st) {
  using M = mae::MaskedAutoencoder<Cfg>;
  const char* root = std::getenv("MAE_BENCH_DIR");
  const fs::path dir = fs::path(root ? root : fs::temp_directory_path().string()) / "mae_bench_checkpoint";
  fs::remove_all(dir);
  const FlatImages images(Cfg::in_chans, Cfg::img_size);
  mae::BatchLoader loader(images, Cfg::img_size, 1, 0, {}, std::vector<double>(Cfg::in_chans, 0.5),
                          std::vector<double>(Cfg::in_chans, 0.25));
  M model;
  mae::TrainOptions o;
  o.batch_size = 1, o.out_dir = dir.string(), o.progress = false;
  mae::Trainer<M> trainer(model, loader, o);
  for (auto _ : st) trainer.save_checkpoint();
  const double bytes = static_cast<double>(fs::file_size(dir / "checkpoint.safetensors"));
  st.counters["MB"] = bytes / 1e6;
  st.counters["MB/s"] = benchmark::Counter(bytes / 1e6, benchmark::Counter::kIsIterationInvariantRate);
  fs::remove_all(dir);
}

#define MAE_SAVE_BENCH(NAME, CFG)             \
  BENCHMARK_TEMPLATE(BM_save_checkpoint, CFG) \
      ->Name("save_checkpoint/" NAME)         \
      ->Unit(benchmark::kMillisecond)         \
      ->UseRealTime()
MAE_SAVE_BENCH("tiny_28x28_gray", mae::presets::vit_tiny_28x28_gray<float>);
MAE_SAVE_BENCH("tiny_32x32_rgb", mae::presets::vit_tiny_32x32_rgb<float>);
MAE_SAVE_BENCH("tiny_patch16_224", mae::presets::vit_tiny_patch16_224<float>);
MAE_SAVE_BENCH("vit_base_patch16_dec512d8b", mae::presets::vit_base_patch16_dec512d8b<float>);

}  // namespace

BENCHMARK_MAIN();
