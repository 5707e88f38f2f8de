// Data parallel over MPI (mae/distributed.hpp). Run as
//   mpirun --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1 distributed_tests
// (tests/CMakeLists.txt); with one rank it checks the same things against itself.
#define DOCTEST_CONFIG_IMPLEMENT
#include "test_util.hpp"

#include <doctest/doctest.h>
#include <mae/data.hpp>
#include <mae/mae.hpp>
#include <mae/training/distributed.hpp>

#include <stb/stb_image_write.h>
#include <unistd.h>

#include <filesystem>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

using mae::Index;
using mae_test::rel_dist;

namespace {
int g_rank = 0, g_size = 1;

using Cfg = mae::Config<16, 4, 3, 64, 2, 4, 32, 1, 2>;
using M = mae::MaskedAutoencoder<Cfg>;
constexpr Index kImages = 96, kChw = 3 * 16 * 16, kL = 16;
constexpr std::uint64_t kSeed = 5;
constexpr double kRatio = 0.75;

// kImages random 3 x 20 x 20 images (the loader crops and resizes them to 16 x 16)
class RandomImages : public mae::ImageDataset {
 public:
  RandomImages() : data_(static_cast<std::size_t>(kImages * 3 * 20 * 20)) {
    mae::Rng r(91);
    for (auto& v : data_) v = static_cast<float>(r.uniform());
  }
  Index size() const override { return kImages; }
  Index channels() const override { return 3; }
  Index height(Index) const override { return 20; }
  Index width(Index) const override { return 20; }
  void load(Index i, float* out) const override { std::copy_n(data_.data() + i * 1200, 1200, out); }
  int label(Index i) const override { return static_cast<int>(i % 3); }  // for fine-tuning
  std::string name() const override { return "random"; }

 private:
  std::vector<float> data_;
};

struct Run {
  std::vector<float> losses, first_grads, params;
};

// steps optimizer steps at global batch G. ranks = 1: this process alone on the whole batch;
// ranks = g_size: this rank's DistributedSampler share, gradients averaged over the ranks.
Run train(Index G, Index steps, int ranks) {
  const std::vector<float> data = mae_test::random_floats(kImages * kChw, 77);
  const RandomImages ds;  // for the loader's order and shard only: the images are `data`
  M model(M::Options{false, 3});
  mae::AdamW<float> opt(model.parameters(), mae::AdamWOptions{});
  const int rank = ranks == 1 ? 0 : g_rank;
  const Index B = G / ranks, per_epoch = kImages / G;
  mae::BatchLoader loader(ds, 16, B, kSeed, mae::AugmentOptions{}, {0.5, 0.5, 0.5}, {0.3, 0.3, 0.3});
  loader.set_shard(rank, ranks);  // DistributedSampler's share
  std::vector<float> imgs(static_cast<std::size_t>(B * kChw)), noise(static_cast<std::size_t>(B * kL));
  Run run;
  for (Index s = 0; s < steps; ++s) {
    const Index epoch = s / per_epoch, k = s % per_epoch;
    const std::vector<Index> order = loader.permutation(epoch);  // the same on every rank
    for (Index j = 0; j < B; ++j) {
      const Index pos = loader.position(k, j), idx = order[pos];  // pos: the place in the epoch
      REQUIRE(pos == (k * B + j) * ranks + rank);
      std::copy_n(data.data() + idx * kChw, kChw, imgs.data() + j * kChw);
      mae::masking_noise(noise.data() + j * kL, kL, kSeed, epoch, pos);
    }
    float loss = model.forward(mae::images(imgs.data(), B, 3, 16, 16), kRatio, noise.data());
    model.zero_grad();
    model.backward();
    if (ranks > 1) {
      mae::mpi::allreduce_mean(model.gradients().data(), model.gradients().size(), MPI_COMM_WORLD);
      loss = mae::mpi::mean_over_ranks(loss, MPI_COMM_WORLD);
    }
    if (s == 0) run.first_grads.assign(model.gradients().data(), model.gradients().data() + model.gradients().size());
    opt.step(model.parameters(), model.gradients(), 1e-3);
    run.losses.push_back(loss);
  }
  run.params.assign(model.parameters().data(), model.parameters().data() + model.parameters().size());
  return run;
}

// Every rank holds bitwise the same values.
bool same_on_every_rank(const std::vector<float>& v) {
  std::vector<float> lo(v), hi(v);
  const int n = static_cast<int>(v.size());
  MPI_Allreduce(MPI_IN_PLACE, lo.data(), n, MPI_FLOAT, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(MPI_IN_PLACE, hi.data(), n, MPI_FLOAT, MPI_MAX, MPI_COMM_WORLD);
  return std::memcmp(lo.data(), v.data(), sizeof(float) * v.size()) == 0 &&
         std::memcmp(hi.data(), v.data(), sizeof(float) * v.size()) == 0;
}

// The largest relative difference of two loss curves of one length, step by step.
double max_relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  double e = 0;
  for (std::size_t s = 0; s < want.size(); ++s) e = std::max(e, std::abs(double(got[s]) / want[s] - 1));
  return e;
}
}  // namespace

TEST_CASE("masking_noise depends on (seed, epoch, position) only") {
  std::vector<float> a(kL), b(kL), c(kL);
  mae::masking_noise(a.data(), kL, kSeed, 1, 7);
  mae::masking_noise(b.data(), kL, kSeed, 1, 7);
  mae::masking_noise(c.data(), kL, kSeed, 1, 8);
  CHECK(a == b);
  CHECK(a != c);
  for (float v : a) CHECK((v >= 0.0f && v < 1.0f));
}

TEST_CASE("allreduce_mean: the mean over the ranks, the same on every rank") {
  std::vector<float> v(1000);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((g_rank + 1) * static_cast<int>(i));
  mae::mpi::allreduce_mean(v.data(), static_cast<Index>(v.size()), MPI_COMM_WORLD);
  const float mean_factor = static_cast<float>(g_size + 1) / 2;  // mean of 1..R
  for (std::size_t i = 0; i < v.size(); ++i) CHECK(v[i] == doctest::Approx(mean_factor * i).epsilon(1e-6));
  CHECK(same_on_every_rank(v));
  CHECK(mae::mpi::mean_over_ranks(static_cast<double>(g_rank), MPI_COMM_WORLD) == (g_size - 1) / 2.0);
  // in buckets (here of 7 floats, the last one short): every value reduced, bitwise as in one call
  const std::vector<float> x = mae_test::random_floats(1000, 31 + static_cast<std::uint64_t>(g_rank));
  std::vector<float> whole(x), buckets(x);
  mae::mpi::allreduce_mean(whole.data(), 1000, MPI_COMM_WORLD, /*bucket_bytes=*/4000);
  mae::mpi::allreduce_mean(buckets.data(), 1000, MPI_COMM_WORLD, /*bucket_bytes=*/28);
  CHECK(whole != x);
  CHECK(std::memcmp(whole.data(), buckets.data(), sizeof(float) * 1000) == 0);
}

// GradientMean (DDP's reducer): backward's reports start the buckets from the store's end,
// every bucket is under way before backward returns (the last report covers the store), and
// the mean is allreduce_mean's, bitwise for 2 ranks (a + b is b + a; with more ranks the
// non-blocking algorithm may sum in another order).
TEST_CASE("GradientMean: buckets start during backward; the result is allreduce_mean's") {
  M model(M::Options{false, 3});
  const std::vector<float> img = mae_test::random_floats(4 * kChw, 41 + static_cast<std::uint64_t>(g_rank));
  model.forward(mae::images(img.data(), 4, 3, 16, 16), kRatio);
  auto& g = model.gradients();
  model.zero_grad();
  model.backward();
  std::vector<float> want(g.data(), g.data() + g.size());
  mae::mpi::allreduce_mean(want.data(), g.size(), MPI_COMM_WORLD);
  constexpr Index kBucket = 4096;  // bytes: many buckets
  const Index buckets = (g.size() + kBucket / 4 - 1) / (kBucket / 4);
  mae::mpi::GradientMean reducer(MPI_COMM_WORLD, kBucket);
  std::vector<Index> started;  // buckets under way after each report
  model.zero_grad();
  model.backward(1.0f, [&](Index from) {
    reducer.ready(g.data(), g.size(), from);
    started.push_back(reducer.buckets_started());
    CHECK(reducer.buckets_started() == (from == 0 ? buckets : (g.size() - from) / (kBucket / 4)));  // all in [from, n)
  });
  REQUIRE(started.size() > 2);
  CHECK(started.front() >= 1);  // decoder_pred: the last bucket or more
  CHECK(started.front() < buckets);
  CHECK(started.back() == buckets);
  std::vector<float> dummy(3);
  CHECK_THROWS_WITH_AS(reducer.mean(dummy.data(), 3), doctest::Contains("under way"), mae::Error);
  reducer.mean(g.data(), g.size());
  CHECK(reducer.buckets_started() == 0);
  const std::vector<float> got(g.data(), g.data() + g.size());
  CHECK(same_on_every_rank(got));
  if (g_size <= 2) {
    CHECK(std::memcmp(got.data(), want.data(), sizeof(float) * want.size()) == 0);
  } else {
    CHECK(rel_dist(got, want) < 1e-6);
  }
}

// The ranks' sum over the batch is taken in another order than one process's (each rank's
// half, then across ranks), so the two agree to float rounding: the first step's gradients to
// 1e-5 (relative; measured ~1e-7; a missing 1 / R or a wrong share of the batch is off by
// O(1)), and the losses of 20 AdamW steps to 1e-4 (rounding differences that Adam's
// normalized steps carry forward; measured below 1e-6).
TEST_CASE("R ranks train the model one process trains at the same global batch") {
  const Index G = 8, steps = 20;  // 12 batches per epoch: the run crosses an epoch boundary
  const Run one = train(G, steps, 1), dist = train(G, steps, g_size);
  const double e_grad = rel_dist(dist.first_grads, one.first_grads);
  double e_loss = 0;
  for (Index s = 0; s < steps; ++s) e_loss = std::max(e_loss, std::abs(double(dist.losses[s]) / one.losses[s] - 1));
  MESSAGE("rank " << g_rank << " of " << g_size << ": first gradients " << e_grad << ", losses " << e_loss
                  << " (relative)");
  CHECK(e_grad < 1e-5);
  CHECK(e_loss < 1e-4);
  CHECK(one.losses.back() < 0.8 * one.losses.front());  // it trains
  CHECK(same_on_every_rank(dist.params));               // every rank applied the same step
}

TEST_CASE("bitwise the same for 1 and 2 OpenMP threads per rank") {
  const int before = mae::max_threads();
  mae::set_num_threads(1);
  const Run a = train(8, 4, g_size);
  mae::set_num_threads(2);
  const Run b = train(8, 4, g_size);
  mae::set_num_threads(before);
  CHECK(std::memcmp(a.params.data(), b.params.data(), sizeof(float) * a.params.size()) == 0);
  CHECK(std::memcmp(a.losses.data(), b.losses.data(), sizeof(float) * a.losses.size()) == 0);
}

namespace {
struct TrainerRun {
  std::vector<float> losses, update;  // update: the parameters' change over the run
};

// mae::Trainer for 2 epochs at a global batch of 16: 2 accumulated micro-batches of 8 images,
// split across the processes; out: its output directory.
// max_steps >= 0: stop there (with a checkpoint); resume: continue from this checkpoint.
TrainerRun run_trainer(const mae::DataParallel& parallel, const std::string& out, Index max_steps = -1,
                       const std::string& resume = "") {
  const RandomImages ds;
  mae::TrainOptions o;
  o.epochs = 2, o.batch_size = 4 * 2 / parallel.ranks, o.accum_iter = 2, o.seed = 9, o.warmup_epochs = 0.5;
  o.noise_by_position = true, o.parallel = parallel, o.out_dir = out, o.progress = false, o.max_steps = max_steps;
  mae::BatchLoader loader(ds, 16, o.batch_size, o.seed, mae::AugmentOptions{}, {0.5, 0.5, 0.5}, {0.3, 0.3, 0.3});
  M model(M::Options{false, 4});
  const std::vector<float> init(model.parameters().data(), model.parameters().data() + model.parameters().size());
  mae::Trainer<M> trainer(model, loader, o);
  if (!resume.empty()) trainer.resume(resume);
  trainer.run();
  TrainerRun r;
  for (const auto& h : trainer.history()) r.losses.push_back(static_cast<float>(h.loss));
  for (std::size_t i = 0; i < init.size(); ++i) r.update.push_back(model.parameters().data()[i] - init[i]);
  return r;
}
}  // namespace

// mae::Trainer with a DataParallel: the DistributedSampler share, noise by position, the
// gradients' mean once per optimizer step (accumulation), lr from the global batch, and only
// the first process writing. Losses to 1e-4 as above. The parameter updates of 24 AdamW steps
// to 5e-4 (measured 8.6e-5 on a Zen 5): AdamW divides each gradient by the root of its own
// running square, so where a gradient is tiny its rounding differences reach the update at
// full size; a wrong share, mean or learning rate moves the updates by 10% or more.
TEST_CASE("Trainer on R processes trains the model one process trains at the same global batch") {
  const std::string base = "/tmp/mae_test_distributed_trainer";
  const std::string mine = base + "_rank" + std::to_string(g_rank);
  std::filesystem::remove_all(mine);
  const TrainerRun one = run_trainer(mae::DataParallel{}, "");
  MPI_Barrier(MPI_COMM_WORLD);
  const TrainerRun dist = run_trainer(mae::mpi::data_parallel(), mine);
  REQUIRE(one.losses.size() == 2 * kImages / 8);  // micro-batches: 8 images (one process) or 4 on each of 2
  const double e_loss = max_relative_error(dist.losses, one.losses);
  const double e_update = rel_dist(dist.update, one.update);
  MESSAGE("Trainer, rank " << g_rank << " of " << g_size << ": losses " << e_loss << ", parameter updates "
                           << e_update);
  CHECK(e_loss < 1e-4);
  CHECK(e_update < 5e-4);
  CHECK(same_on_every_rank(dist.update));
  CHECK(std::filesystem::exists(mine + "/checkpoint.safetensors") == (g_rank == 0));
  CHECK(std::filesystem::exists(mine + "/log.csv") == (g_rank == 0));
  std::filesystem::remove_all(mine);
  CHECK_THROWS_WITH_AS(run_trainer(mae::DataParallel{0, 2, {}, {}, {}, {}}, ""), doctest::Contains("needs a mean function"),
                       mae::Error);
  // the mean begun during backward (the default) gives the mean after backward
  const TrainerRun after = run_trainer(mae::mpi::data_parallel(MPI_COMM_WORLD, /*overlap=*/false), "");
  if (g_size <= 2) CHECK(std::memcmp(after.update.data(), dist.update.data(), sizeof(float) * dist.update.size()) == 0);
}

// Resume on the same number of processes continues the uninterrupted run bit for bit: rank 0
// wrote the checkpoint, every rank reads it.
TEST_CASE("data-parallel Trainer: a resume continues the run bit for bit") {
  const std::string dir = "/tmp/mae_test_distributed_resume";
  if (g_rank == 0) std::filesystem::remove_all(dir);
  MPI_Barrier(MPI_COMM_WORLD);
  const TrainerRun whole = run_trainer(mae::mpi::data_parallel(), "");
  run_trainer(mae::mpi::data_parallel(), dir, /*max_steps=*/14);  // inside the second epoch
  MPI_Barrier(MPI_COMM_WORLD);                                    // rank 0's checkpoint is written
  const TrainerRun resumed = run_trainer(mae::mpi::data_parallel(), "", -1, dir + "/checkpoint.safetensors");
  REQUIRE(resumed.update.size() == whole.update.size());
  CHECK(std::memcmp(resumed.update.data(), whole.update.data(), sizeof(float) * whole.update.size()) == 0);
  MPI_Barrier(MPI_COMM_WORLD);
  if (g_rank == 0) std::filesystem::remove_all(dir);
  // a stop inside an accumulation window would checkpoint one rank's partial gradient
  if (g_size > 1)
    CHECK_THROWS_WITH_AS(run_trainer(mae::mpi::data_parallel(), "", /*max_steps=*/13),
                         doctest::Contains("must be multiples of it"), mae::Error);
}

// A resume on another number of processes at the same global batch: the same sample
// positions, masks and learning rates, so the run goes on as one process would have, to float
// rounding (the gradients' sums are ordered otherwise): 2 processes for 10 micro-batches
// (inside the first epoch, 5 optimizer steps), then 1 process; and 1 then 2; each against one
// process throughout, to the tolerances of the test above (the same cause: reduction order).
TEST_CASE("data-parallel Trainer: a resume on another number of processes continues to float rounding") {
  const std::string dir = "/tmp/mae_test_distributed_elastic";
  if (g_rank == 0) std::filesystem::remove_all(dir);
  MPI_Barrier(MPI_COMM_WORLD);
  const TrainerRun one = run_trainer(mae::DataParallel{}, "");
  run_trainer(mae::mpi::data_parallel(), dir + "/many", /*max_steps=*/10);
  if (g_rank == 0) run_trainer(mae::DataParallel{}, dir + "/one", /*max_steps=*/10);
  MPI_Barrier(MPI_COMM_WORLD);  // rank 0's checkpoints are written
  const TrainerRun many_one = run_trainer(mae::DataParallel{}, "", -1, dir + "/many/checkpoint.safetensors");
  const TrainerRun one_many = run_trainer(mae::mpi::data_parallel(), "", -1, dir + "/one/checkpoint.safetensors");
  const std::vector<float> rest(one.losses.begin() + 10, one.losses.end());
  for (const TrainerRun* r : {&many_one, &one_many}) {
    REQUIRE(r->losses.size() == rest.size());  // the same final step
    const double e_loss = max_relative_error(r->losses, rest), e_update = rel_dist(r->update, one.update);
    MESSAGE((r == &many_one ? g_size : 1)
            << " -> " << (r == &many_one ? 1 : g_size) << " processes against 1 throughout: losses " << e_loss
            << ", parameter updates " << e_update);
    CHECK(e_loss < 1e-4);
    CHECK(e_update < 5e-4);
  }
  CHECK(same_on_every_rank(one_many.update));
  MPI_Barrier(MPI_COMM_WORLD);
  if (g_rank == 0) std::filesystem::remove_all(dir);
}

namespace {
using Vit = mae::VisionTransformer<Cfg>;

struct FinetuneRun {
  std::vector<float> losses, update;  // update: the parameters' change over the run
  double accuracy = -1;
};

// mae::Finetuner for 2 epochs at a global batch of 8 with drop path, label smoothing and
// random resized crops; drop path drawn by position in every run.
FinetuneRun run_finetuner(const mae::DataParallel& parallel, const std::string& out, Index max_steps = -1,
                          const std::string& resume = "") {
  const RandomImages ds;
  mae::FinetuneOptions o;
  o.epochs = 2, o.batch_size = 8 / parallel.ranks, o.seed = 13, o.warmup_epochs = 0.5, o.layer_decay = 0.8;
  o.drop_path_by_position = true, o.parallel = parallel, o.out_dir = out, o.progress = false, o.max_steps = max_steps;
  mae::AugmentOptions aug;
  aug.random_resized_crop = true;
  mae::BatchLoader loader(ds, 16, o.batch_size, o.seed, aug, {0.5, 0.5, 0.5}, {0.3, 0.3, 0.3});
  Vit::Options vo;
  vo.num_classes = 3, vo.drop_path = 0.3, vo.label_smoothing = 0.1, vo.seed = 21;
  Vit model(vo);
  const std::vector<float> init(model.parameters().data(), model.parameters().data() + model.parameters().size());
  mae::BatchLoader eval_loader(ds, 16, 1, o.seed, {}, {0.5, 0.5, 0.5}, {0.3, 0.3, 0.3});
  std::vector<int> labels;
  for (Index i = 0; i < ds.size(); ++i) labels.push_back(ds.label(i));
  mae::Finetuner<Vit> tuner(model, loader, o, [&] {
    const auto r =
        mae::evaluate(model, ds.size(), labels.data(), [&](Index i, float* d) { eval_loader.evaluation(i, d, 1.0); });
    return mae::EvalResult{r.top1(), r.mean_loss(), r.count()};
  });
  if (!resume.empty()) tuner.resume(resume);
  tuner.run();
  FinetuneRun r;
  for (const auto& h : tuner.history()) r.losses.push_back(static_cast<float>(h.loss));
  for (std::size_t i = 0; i < init.size(); ++i) r.update.push_back(model.parameters().data()[i] - init[i]);
  if (!tuner.evaluations().empty()) r.accuracy = tuner.evaluations().back().accuracy;
  return r;
}
}  // namespace

// Fine-tuning data parallel: the same model as one process at the same global batch (drop
// path by position), to float rounding (tolerances as above); every process evaluates the
// whole test set and gets the same result; a resume continues bit for bit.
TEST_CASE("Finetuner on R processes trains the classifier one process trains; resume is bit for bit") {
  const std::string base = "/tmp/mae_test_distributed_finetune_rank";
  const std::string mine = base + std::to_string(g_rank), first = base + "0";
  std::filesystem::remove_all(mine);
  MPI_Barrier(MPI_COMM_WORLD);
  const FinetuneRun one = run_finetuner(mae::DataParallel{}, "");
  const FinetuneRun dist = run_finetuner(mae::mpi::data_parallel(), mine);
  REQUIRE(one.losses.size() == 2 * kImages / 8);
  const double e_loss = max_relative_error(dist.losses, one.losses);
  const double e_update = rel_dist(dist.update, one.update);
  MESSAGE("Finetuner, rank " << g_rank << " of " << g_size << ": losses " << e_loss << ", parameter updates "
                             << e_update);
  CHECK(e_loss < 1e-4);
  CHECK(e_update < 1e-4);
  CHECK(same_on_every_rank(dist.update));
  CHECK(dist.accuracy >= 0);
  CHECK(same_on_every_rank({static_cast<float>(dist.accuracy)}));
  const FinetuneRun after = run_finetuner(mae::mpi::data_parallel(MPI_COMM_WORLD, /*overlap=*/false), "");
  if (g_size <= 2) CHECK(std::memcmp(after.update.data(), dist.update.data(), sizeof(float) * dist.update.size()) == 0);
  for (const char* file : {"/classifier.safetensors", "/checkpoint.safetensors", "/eval.csv", "/log.csv"})
    CHECK(std::filesystem::exists(mine + file) == (g_rank == 0));
  std::filesystem::remove_all(mine);
  MPI_Barrier(MPI_COMM_WORLD);
  run_finetuner(mae::mpi::data_parallel(), mine, /*max_steps=*/17);  // inside the second epoch
  MPI_Barrier(MPI_COMM_WORLD);                                       // rank 0's checkpoint is written
  const FinetuneRun resumed = run_finetuner(mae::mpi::data_parallel(), "", -1, first + "/checkpoint.safetensors");
  REQUIRE(resumed.update.size() == dist.update.size());
  CHECK(std::memcmp(resumed.update.data(), dist.update.data(), sizeof(float) * dist.update.size()) == 0);
  MPI_Barrier(MPI_COMM_WORLD);
  std::filesystem::remove_all(mine);
}

// Fine-tuning stopped on R processes (inside the second epoch) and resumed on one: the rest
// of the run as one process throughout, to the tolerances above (mixup off: it draws one mix
// per process and batch, as DDP's, so with it the run depends on the process count).
TEST_CASE("data-parallel Finetuner: a resume on one process continues to float rounding") {
  const std::string dir = "/tmp/mae_test_distributed_finetune_elastic";
  if (g_rank == 0) std::filesystem::remove_all(dir);
  MPI_Barrier(MPI_COMM_WORLD);
  const FinetuneRun one = run_finetuner(mae::DataParallel{}, "");
  run_finetuner(mae::mpi::data_parallel(), dir, /*max_steps=*/17);
  MPI_Barrier(MPI_COMM_WORLD);
  const FinetuneRun resumed = run_finetuner(mae::DataParallel{}, "", -1, dir + "/checkpoint.safetensors");
  REQUIRE(resumed.losses.size() == one.losses.size() - 17);
  const double e_loss = max_relative_error(resumed.losses, {one.losses.begin() + 17, one.losses.end()});
  const double e_update = rel_dist(resumed.update, one.update);
  MESSAGE("Finetuner, " << g_size << " -> 1 processes: losses " << e_loss << ", parameter updates " << e_update);
  CHECK(e_loss < 1e-4);
  CHECK(e_update < 1e-4);
  MPI_Barrier(MPI_COMM_WORLD);
  if (g_rank == 0) std::filesystem::remove_all(dir);
}

TEST_CASE("an image folder is scanned by the first process and sent to the others; statistics summed exactly") {
  // one directory every rank sees (rank 0's name)
  std::string dir =
      (std::filesystem::temp_directory_path() / ("mae_dist_folder_" + std::to_string(::getpid()))).string();
  const mae::DataParallel p = mae::mpi::data_parallel(MPI_COMM_WORLD);
  p.broadcast(dir);
  constexpr int kFiles = 7;
  if (g_rank == 0) {
    std::filesystem::remove_all(dir);
    for (int i = 0; i < kFiles; ++i) {
      const std::string sub = dir + "/" + (i % 2 ? "b" : "a");
      std::filesystem::create_directories(sub);
      std::vector<unsigned char> px(static_cast<std::size_t>(3 * (5 + i) * 4));
      for (std::size_t k = 0; k < px.size(); ++k) px[k] = static_cast<unsigned char>(k * 37 + i * 11);
      REQUIRE(stbi_write_png((sub + "/" + std::to_string(i) + ".png").c_str(), 5 + i, 4, 3, px.data(), 3 * (5 + i)));
    }
  }
  p.barrier();
  mae::ImageIndexCache cache;  // (not saved: no path)
  const auto f = mae::open_image_folder(dir, {3}, g_rank == 0 ? &cache : nullptr, p);
  CHECK(f->size() == kFiles);
  CHECK(f->headers_read() == (g_rank == 0 ? kFiles : 0));  // the others read no file
  std::string index = f->index();                          // and have the first one's folder
  std::string first = index;
  p.broadcast(first);
  CHECK(index == first);
  CHECK(f->width(3) == 11);  // a/6.png (a/0, a/2, a/4, a/6, b/1, ...)

  // the statistics: each process decodes its part, the parts are summed exactly (one process's bits)
  std::vector<double> mean, sd, mean1, sd1;
  mae::dataset_mean_std(*f, mean, sd, 10000, p, g_rank == 0 ? &cache : nullptr);
  mae::dataset_mean_std(*f, mean1, sd1);
  CHECK(mean == mean1);
  CHECK(sd == sd1);
  // kept statistics: the first process's are every process's
  cache.keep_statistics(mae::statistics_key(*f, kFiles), {0.1, 0.2, 0.3, 0.4, 0.5, 0.6});
  mae::dataset_mean_std(*f, mean, sd, 10000, p, g_rank == 0 ? &cache : nullptr);
  CHECK(mean == std::vector<double>{0.1, 0.2, 0.3});
  CHECK(sd == std::vector<double>{0.4, 0.5, 0.6});

  // a folder the first process cannot scan stops every process
  CHECK_THROWS_WITH_AS(mae::open_image_folder(dir + "/missing", {3}, nullptr, p),
                       doctest::Contains(g_rank == 0 ? "is not a directory" : "the first process could not scan it"),
                       mae::Error);
  p.barrier();
  if (g_rank == 0) std::filesystem::remove_all(dir);
}

TEST_CASE("shards are indexed by the first process and sent to the others") {
  const mae::DataParallel p = mae::mpi::data_parallel(MPI_COMM_WORLD);
  mae::ShardOptions o;
  o.labelled = true;
  const std::string dir = std::string(MAE_FIXTURE_DIR) + "/shards/good/train";
  const auto shared = mae::open_shards(dir, o, p);
  const mae::ShardDataset own(dir, o);  // what this process would have read itself
  CHECK(shared->index() == own.index());
  std::string first = shared->index();
  p.broadcast(first);
  CHECK(first == shared->index());
  std::vector<float> a(static_cast<std::size_t>(3 * own.height(0) * own.width(0))), b(a.size());
  own.load(0, a.data()), shared->load(0, b.data());
  CHECK(a == b);
  CHECK_THROWS_WITH_AS(mae::open_shards(dir + "/missing.tar", o, p),
                       doctest::Contains(g_rank == 0 ? "missing.tar" : "the first process could not index them"),
                       mae::Error);
  p.barrier();
}

int main(int argc, char** argv) {
  mae::mpi::Session mpi(argc, argv);
  g_rank = mpi.rank(), g_size = mpi.size();
  doctest::Context ctx(argc, argv);
  const int failed = ctx.run();
  // every rank's verdict: a failure on one fails the job
  int any = failed ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return any;
}
