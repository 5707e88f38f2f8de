// Images per second of the data path that feeds training: BatchLoader batches (decode,
// RandomResizedCrop + flip, bicubic resize, normalize) from Fashion-MNIST in memory and from
// image folders decoded on the fly (28x28 PNG; 256x256 JPEG, as photos are) and from the same
// JPEGs in WebDataset tar shards, at the sizes the presets train at. The folders and shards are
// written once from Fashion-MNIST into /tmp.
//   ./build/release/benchmarks/bench_data [--benchmark_filter=...]
#include <mae/data.hpp>
#include <mae/io/files.hpp>

#include <benchmark/benchmark.h>
#include <stb/stb_image_write.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace {
namespace fs = std::filesystem;
using mae::Index;

constexpr Index kImages = 2048, kBatch = 128;

const mae::FashionMnist& fashion_mnist() {
  static const mae::FashionMnist fm(mae::FashionMnist::kDefaultDir, "train");
  return fm;
}

// DIR/<class>/<i>.png (28x28 gray) or .jpg (side x side RGB, tinted and upscaled)
std::string write_folder(const std::string& name, Index side, bool jpeg) {
  const fs::path dir = fs::temp_directory_path() / ("mae_bench_" + name);
  if (fs::exists(dir / "done")) return dir.string();
  fs::remove_all(dir);
  const auto& fm = fashion_mnist();
  std::vector<float> px(28 * 28), rgb(3 * 28 * 28), big(static_cast<std::size_t>(3 * side * side));
  std::vector<unsigned char> out(static_cast<std::size_t>(3 * side * side));
  for (Index i = 0; i < kImages; ++i) {
    const fs::path cls = dir / std::to_string(fm.label(i));
    fs::create_directories(cls);
    fm.load(i, px.data());
    const std::string file = (cls / (std::to_string(i) + (jpeg ? ".jpg" : ".png"))).string();
    if (!jpeg) {
      for (int k = 0; k < 784; ++k) out[k] = static_cast<unsigned char>(px[k] * 255.0f + 0.5f);
      stbi_write_png(file.c_str(), 28, 28, 1, out.data(), 28);
      continue;
    }
    for (int c = 0; c < 3; ++c)
      for (int k = 0; k < 784; ++k) rgb[c * 784 + k] = px[k] * (0.5f + 0.25f * c);
    mae::resize_bicubic(big.data(), side, side, rgb.data(), 3, 28, 28, 0, 0, 28, 28);
    for (Index k = 0; k < side * side; ++k)
      for (int c = 0; c < 3; ++c)
        out[k * 3 + c] = static_cast<unsigned char>(std::clamp(big[c * side * side + k], 0.0f, 1.0f) * 255.0f + 0.5f);
    stbi_write_jpg(file.c_str(), static_cast<int>(side), static_cast<int>(side), 3, out.data(), 90);
  }
  std::FILE* f = std::fopen((dir / "done").string().c_str(), "w");
  if (f) std::fclose(f);
  return dir.string();
}

// The same JPEGs as WebDataset shards of 1,000 (mae::ShardWriter), .cls labels included.
std::string write_shards(const std::string& folder) {
  const fs::path dir = folder + "_shards";
  if (fs::exists(dir / "done")) return dir.string();
  fs::remove_all(dir);
  fs::create_directories(dir);
  const mae::ImageFolder images(folder, {});
  mae::ShardWriter w((dir / "train").string(), 1000);
  for (Index i = 0; i < images.size(); ++i) {
    w.add("img" + std::to_string(i),
          {{"jpg", mae::read_file(images.item_name(i))}, {"cls", std::to_string(images.label(i))}});
  }
  w.finish();
  std::FILE* f = std::fopen((dir / "done").string().c_str(), "w");
  if (f) std::fclose(f);
  return dir.string();
}

void run_loader(benchmark::State& state, const mae::ImageDataset& ds, Index S) {
  mae::BatchLoader loader(ds, S, kBatch, 0);
  std::vector<float> batch(static_cast<std::size_t>(kBatch * ds.channels() * S * S));
  Index b = 0;
  for (auto _ : state) {
    loader.batch(0, b, batch.data());
    benchmark::DoNotOptimize(batch.data());
    b = (b + 1) % loader.batches_per_epoch();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.counters["threads"] = mae::max_threads();
}

void BM_fashion_mnist_in_memory(benchmark::State& state) {
  mae::EvenSubset sub(fashion_mnist(), kImages);
  run_loader(state, sub, 28);
}

void BM_png_folder_28(benchmark::State& state) {
  const mae::ImageFolder folder(write_folder("png28", 28, false), {1});
  run_loader(state, folder, 28);
}

void BM_jpeg_folder_256(benchmark::State& state) {  // arg: the model's image size
  const mae::ImageFolder folder(write_folder("jpg256", 256, true), {3});
  run_loader(state, folder, state.range(0));
}

// From shards: each image read by its offset in a shard and decoded from memory, in the
// loader's shard order (shards shuffled, a shuffle buffer of 1,000).
void BM_jpeg_shards_256(benchmark::State& state) {  // arg: the model's image size
  mae::ShardOptions o;
  o.images.channels = 3;
  const mae::ShardDataset shards(write_shards(write_folder("jpg256", 256, true)), o);
  state.counters["index_bytes_per_image"] = static_cast<double>(mae::ShardDataset::index_bytes());
  run_loader(state, shards, state.range(0));
}

}  // namespace

BENCHMARK(BM_fashion_mnist_in_memory)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_png_folder_28)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_jpeg_folder_256)->Arg(64)->Arg(224)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_jpeg_shards_256)->Arg(64)->Arg(224)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
