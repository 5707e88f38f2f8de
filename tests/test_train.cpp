// training/: the Trainer's AdamW + schedule + accumulation against PyTorch, bit-exact
// resume, the stop on a non-finite loss, resume refusals; the Finetuner's full recipe resumed.
#include "test_util.hpp"

#include <mae/training/pretrain.hpp>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <sys/stat.h>

using mae::Index;
namespace fs = std::filesystem;

namespace {
using mae_test::scratch_dir;
using mae_test::slurp;

template <class Cfg>
void check_adamw_fixture(const std::string& name) {
  using M = mae::MaskedAutoencoder<Cfg>;
  const mae::safetensors::File f(std::string(MAE_FIXTURE_DIR) + "/" + name + ".safetensors");
  const auto& meta = f.metadata();
  REQUIRE(meta.at("mae.config") == Cfg::name());
  const Index iters = std::stoll(meta.at("iters_per_epoch")), epochs = std::stoll(meta.at("epochs"));
  const int accum = std::stoi(meta.at("accum_iter"));
  M model(typename M::Options{meta.at("norm_pix_loss") == "1", 0});
  model.load(f, /*strict=*/false);
  mae::AdamWOptions ao;
  ao.weight_decay = std::stod(meta.at("weight_decay"));
  mae::AdamW<float> opt(model.parameters(), ao);
  mae::LrSchedule sched{std::stod(meta.at("lr")), std::stod(meta.at("min_lr")), std::stod(meta.at("warmup_epochs")),
                        static_cast<double>(epochs)};
  const std::vector<double> ref_losses = f.read<double>("output.losses"), ref_lrs = f.read<double>("output.lrs");
  const double ratio = std::stod(meta.at("mask_ratio"));
  double lr = 0;
  model.zero_grad();
  for (Index e = 0; e < epochs; ++e)
    for (Index it = 0; it < iters; ++it) {
      const Index k = e * iters + it;
      if (it % accum == 0) lr = sched.at(static_cast<double>(it) / static_cast<double>(iters) + static_cast<double>(e));
      CHECK(lr == doctest::Approx(ref_lrs[k]).epsilon(1e-12));
      mae::Shape s;
      const std::vector<float> imgs = f.read<float>("input.imgs." + std::to_string(k), &s);
      const std::vector<float> noise = f.read<float>("input.noise." + std::to_string(k));
      const float loss = model.forward(mae::images(imgs.data(), s[0], s[1], s[2], s[3]), ratio, noise.data());
      INFO("micro-batch " << k);
      CHECK(loss == doctest::Approx(ref_losses[k]).epsilon(1e-4));
      model.backward(1.0f / accum);
      if ((it + 1) % accum == 0) {
        opt.step(model.parameters(), model.gradients(), lr);
        model.zero_grad();
      }
    }
  CHECK(opt.steps() == epochs * (iters / accum));  // the leftover micro-batch joins the next epoch's window
  mae_test::CompareReport worst_p, worst_m;
  for (const auto& t : model.parameters().tensors()) {
    std::vector<float> ref = f.read<float>("final." + t.name);
    std::vector<float> ours(model.parameters().data() + t.offset, model.parameters().data() + t.offset + t.size);
    if (t.name.size() > 13 && t.name.compare(t.name.size() - 13, 13, "attn.qkv.bias") == 0) {
      // The key bias adds a constant to each row of q k^T, which softmax ignores: its true
      // gradient is exactly zero, and both implementations see only rounding noise, which
      // Adam normalizes to +-lr steps of random sign. Those elements are not comparable.
      const Index D = t.size / 3;
      ours.erase(ours.begin() + D, ours.begin() + 2 * D);
      ref.erase(ref.begin() + D, ref.begin() + 2 * D);
    }
    const auto rp = mae_test::compare(ours.data(), ref.data(), static_cast<Index>(ours.size()), 1e-5, 1e-4);
    const std::vector<float> rm = f.read<float>("final.exp_avg." + t.name);
    const auto rmr = mae_test::compare(opt.exp_avg().data() + t.offset, rm.data(), t.size, 1e-6, 1e-3);
    INFO(t.name << " params: " << rp.str() << "; exp_avg: " << rmr.str());
    CHECK(rp.bad == 0);
    CHECK(rmr.bad == 0);
    worst_p.max_abs = std::max(worst_p.max_abs, rp.max_abs), worst_p.max_rel = std::max(worst_p.max_rel, rp.max_rel);
    worst_m.max_abs = std::max(worst_m.max_abs, rmr.max_abs);
  }
  MESSAGE(name << ": parameters after " << opt.steps() << " AdamW steps: worst abs " << worst_p.max_abs
               << ", worst rel " << worst_p.max_rel << "; exp_avg worst abs " << worst_m.max_abs);
}

// Random images of another size than the model's: the loader crops and resizes them.
class RandomImages : public mae::ImageDataset {
 public:
  RandomImages(Index n, Index C, Index H, Index W, std::uint64_t seed) : n_(n), C_(C), H_(H), W_(W) {
    mae::Rng r(seed);
    px_.resize(static_cast<std::size_t>(n * C * H * W));
    for (auto& v : px_) v = static_cast<float>(r.uniform());
  }
  Index size() const override { return n_; }
  Index channels() const override { return C_; }
  Index height(Index) const override { return H_; }
  Index width(Index) const override { return W_; }
  void load(Index i, float* out) const override {
    std::copy(px_.begin() + i * C_ * H_ * W_, px_.begin() + (i + 1) * C_ * H_ * W_, out);
  }
  std::string name() const override { return "random"; }

 private:
  Index n_, C_, H_, W_;
  std::vector<float> px_;
};

using Tiny = mae::Config<8, 2, 1, 16, 2, 2, 16, 1, 2>;
using TinyModel = mae::MaskedAutoencoder<Tiny>;

// Trains `steps` micro-batches of a fresh tiny model, leaving dir/checkpoint.safetensors.
void write_tiny_checkpoint(TinyModel& m, const mae::ImageDataset& data, const fs::path& dir, Index steps);

mae::TrainOptions tiny_options(const fs::path& dir) {
  mae::TrainOptions o;
  o.epochs = 3;
  o.batch_size = 4;
  o.accum_iter = 2;  // 5 micro-batches per epoch: windows span epochs
  o.lr = 1e-3;
  o.warmup_epochs = 1;
  o.seed = 17;
  o.out_dir = dir.string();
  o.progress = false;
  return o;
}
void write_tiny_checkpoint(TinyModel& m, const mae::ImageDataset& data, const fs::path& dir, Index steps) {
  mae::BatchLoader l(data, 8, 4, 1);
  auto o = tiny_options(dir);
  o.max_steps = steps;
  mae::Trainer<TinyModel> t(m, l, o);
  t.run();
}
// A fresh tiny model trained one step on `data`: dir/checkpoint.safetensors.
std::string one_step_checkpoint(const mae::ImageDataset& data, const fs::path& dir) {
  TinyModel m;
  write_tiny_checkpoint(m, data, dir, 1);
  return (dir / "checkpoint.safetensors").string();
}
}  // namespace

TEST_CASE("AdamW, schedule and accumulation match PyTorch (pixel loss, 1 channel)") {
  check_adamw_fixture<Tiny>("adamw_tiny_gray");
}
TEST_CASE("AdamW, schedule and accumulation match PyTorch (norm_pix, 3 channels)") {
  check_adamw_fixture<mae::Config<12, 4, 3, 24, 2, 3, 16, 2, 2>>("adamw_small_rgb_normpix");
}

TEST_CASE("an interrupted and resumed run equals an uninterrupted one, bit for bit") {
  RandomImages data(20, 1, 12, 12, 5);
  const fs::path da = scratch_dir("full"), db = scratch_dir("interrupted");
  // uninterrupted
  TinyModel a(TinyModel::Options{true, 3});
  mae::BatchLoader la(data, 8, 4, 17);
  mae::Trainer<TinyModel> ta(a, la, tiny_options(da));
  CHECK(ta.run());
  REQUIRE(ta.history().size() == 15);
  // interrupted after 7 micro-batches (mid-epoch, mid-accumulation window), then resumed
  std::vector<mae::StepRecord> hist;
  {
    TinyModel b(TinyModel::Options{true, 3});
    mae::BatchLoader lb(data, 8, 4, 17);
    auto o = tiny_options(db);
    o.max_steps = 7;
    mae::Trainer<TinyModel> tb(b, lb, o);
    CHECK_FALSE(tb.run());
    hist = tb.history();
  }
  TinyModel c(TinyModel::Options{true, 999});  // another init: everything must come from the checkpoint
  mae::BatchLoader lc(data, 8, 4, 17);
  mae::Trainer<TinyModel> tc(c, lc, tiny_options(db));
  tc.resume((db / "checkpoint.safetensors").string());
  CHECK(tc.steps_done() == 7);
  CHECK(tc.run());
  hist.insert(hist.end(), tc.history().begin(), tc.history().end());
  REQUIRE(hist.size() == ta.history().size());
  for (std::size_t i = 0; i < hist.size(); ++i) {
    INFO("step " << i);
    CHECK(hist[i].loss == ta.history()[i].loss);
    CHECK(hist[i].lr == ta.history()[i].lr);
  }
  CHECK(std::memcmp(a.parameters().data(), c.parameters().data(), sizeof(float) * a.parameters().size()) == 0);
  CHECK(tc.optimizer().exp_avg_sq() == ta.optimizer().exp_avg_sq());
  // the CSV log of the resumed run continues the interrupted one
  const std::string log = slurp(db / "log.csv");
  CHECK(std::count(log.begin(), log.end(), '\n') == 16);  // header + 15 steps
  CHECK(log.rfind("step,epoch,loss,lr,images_per_s\n", 0) == 0);
}

TEST_CASE("a non-finite loss stops training with a message; the checkpoint is intact") {
  RandomImages data(8, 1, 8, 8, 6);
  const fs::path d = scratch_dir("nan");
  TinyModel m;
  write_tiny_checkpoint(m, data, d, 2);
  const std::string before = slurp(d / "checkpoint.safetensors");
  REQUIRE(!before.empty());
  m.parameters().ptr("decoder_pred.bias")[0] = std::numeric_limits<float>::quiet_NaN();
  mae::BatchLoader l(data, 8, 4, 1);
  mae::Trainer<TinyModel> t(m, l, tiny_options(d));
  CHECK_THROWS_WITH_AS(t.run(), doctest::Contains("non-finite loss (nan) at step 0"), mae::Error);
  CHECK(slurp(d / "checkpoint.safetensors") == before);
}

TEST_CASE("resume refuses a checkpoint of another configuration or another run") {
  RandomImages data(8, 1, 8, 8, 6);
  const fs::path d = scratch_dir("refuse");
  const std::string ckpt = one_step_checkpoint(data, d);
  using Other = mae::MaskedAutoencoder<mae::Config<8, 2, 1, 24, 2, 2, 16, 1, 2>>;
  Other other;
  mae::BatchLoader l(data, 8, 4, 1);
  mae::Trainer<Other> to(other, l, tiny_options(scratch_dir("refuse2")));
  CHECK_THROWS_WITH_AS(to.resume(ckpt), doctest::Contains("another configuration"), mae::Error);
  TinyModel m;
  mae::BatchLoader l2(data, 8, 2, 1);
  auto o = tiny_options(scratch_dir("refuse3"));
  o.batch_size = 2;
  mae::Trainer<TinyModel> t2(m, l2, o);
  CHECK_THROWS_WITH_AS(t2.resume(ckpt),
                       doctest::Contains("global_batch = 8 (4 per process x 1 process x 2 accumulated), this run has 4 "
                                         "(2 per process x 1 process x 2 accumulated)"),
                       mae::Error);
  // a weights-only file is not a training checkpoint
  const std::string weights = (d / "weights.safetensors").string();
  m.save(weights);
  mae::BatchLoader l3(data, 8, 4, 1);
  mae::Trainer<TinyModel> t3(m, l3, tiny_options(scratch_dir("refuse4")));
  CHECK_THROWS_WITH_AS(t3.resume(weights), doctest::Contains("not a training checkpoint"), mae::Error);
}

// What a resume on another number of processes checks (tests/test_distributed.cpp trains
// across the change): the global batch, not the per-process one; masks drawn by position stay
// so. Two processes are simulated here by a mean that changes nothing (no step is taken).
TEST_CASE("resume compares the global batch, so the process count may change; position noise is kept") {
  RandomImages data(16, 1, 8, 8, 6);
  const fs::path d = scratch_dir("global_batch");
  const std::string ckpt = one_step_checkpoint(data, d);  // 1 process x 4 images x 2 accumulated
  const auto resume_as = [&](int ranks, Index batch, const std::string& path) {
    TinyModel m;
    mae::BatchLoader l(data, 8, batch, 1);
    auto o = tiny_options(scratch_dir("global_batch_run"));
    o.batch_size = batch;
    o.parallel = mae::DataParallel{0, ranks, [](float*, Index) {}, {}, {}, {}};
    mae::Trainer<TinyModel> t(m, l, o);
    t.resume(path);
    return t.options().position_noise();
  };
  CHECK(resume_as(2, 2, ckpt));  // 2 x 2 = 1 x 4: accepted
  CHECK_THROWS_WITH_AS(resume_as(2, 4, ckpt),
                       doctest::Contains("global_batch = 8 (4 per process x 1 process x 2 accumulated), this run has "
                                         "16 (4 per process x 2 processes x 2 accumulated)"),
                       mae::Error);
  // a checkpoint of 2 processes resumed on one: masks by position from then on, as before
  const fs::path two_dir = scratch_dir("global_batch_two");
  {
    TinyModel m;
    mae::BatchLoader l(data, 8, 2, 1);
    auto o = tiny_options(two_dir);
    o.batch_size = 2, o.max_steps = 2;
    o.parallel = mae::DataParallel{0, 2, [](float*, Index) {}, {}, {}, {}};
    mae::Trainer<TinyModel> t(m, l, o);
    t.run();
  }
  const std::string two = (two_dir / "checkpoint.safetensors").string();
  CHECK(resume_as(1, 4, two));
  CHECK(!resume_as(1, 4, ckpt));  // (a one-process checkpoint keeps the model's generator)
  // checkpoints from before the global batch was recorded: batch_size x ranks x accum_iter
  std::string old = slurp(ckpt);
  const std::size_t at = old.find("global_batch");
  REQUIRE(at != std::string::npos);
  old.replace(at, 12, "global_batcX");  // (the same length: the header stays valid)
  const std::string legacy = (d / "legacy.safetensors").string();
  std::ofstream(legacy, std::ios::binary) << old;
  CHECK(!resume_as(1, 4, legacy));
  CHECK_THROWS_WITH_AS(resume_as(1, 2, legacy), doctest::Contains("global_batch = 8 (4 per process"), mae::Error);
}

TEST_CASE("resume refuses other images or another normalization, naming what changed, unless allowed") {
  RandomImages data(8, 1, 8, 8, 6);
  const std::string ckpt = one_step_checkpoint(data, scratch_dir("other_data"));
  mae::BatchLoader original(data, 8, 4, 1);  // the statistics the checkpoint was written with
  const auto resume_on = [&](const mae::ImageDataset& images, bool same_statistics, bool allow) {
    TinyModel m;
    mae::BatchLoader l = same_statistics ? mae::BatchLoader(images, 8, 4, 1, {}, original.mean(), original.stddev())
                                         : mae::BatchLoader(images, 8, 4, 1);
    auto o = tiny_options(scratch_dir("other_data_run"));
    o.allow_other_data = allow;
    mae::Trainer<TinyModel> t(m, l, o);
    t.resume(ckpt);
    return t.steps_done();
  };
  CHECK(resume_on(data, true, false) == 1);  // the same images
  RandomImages more(12, 1, 8, 8, 6), resized(8, 1, 9, 9, 6), other_pixels(8, 1, 8, 8, 7);
  CHECK_THROWS_WITH_AS(resume_on(more, true, false), doctest::Contains("8 images then, 12 now"), mae::Error);
  CHECK_THROWS_WITH_AS(resume_on(resized, true, false),
                       doctest::Contains("the same number of images, but other files, labels or image sizes"),
                       mae::Error);
  CHECK_THROWS_WITH_AS(resume_on(other_pixels, false, false), doctest::Contains("another normalization"), mae::Error);
  struct Renamed : RandomImages {  // the same pixels, labels and sizes under other file names
    using RandomImages::RandomImages;
    std::string item_name(Index i) const override { return name() + "/renamed_" + std::to_string(i); }
  } renamed(8, 1, 8, 8, 6);
  CHECK_THROWS_WITH_AS(resume_on(renamed, true, false), doctest::Contains("other files"), mae::Error);
  CHECK_THROWS_WITH_AS(resume_on(more, true, false), doctest::Contains("--allow-other-data"), mae::Error);
  CHECK(resume_on(more, false, true) == 1);
}

TEST_CASE("checkpoints every N steps keep the last K; a stop request checkpoints and resumes bit for bit") {
  RandomImages data(20, 1, 12, 12, 5);
  // uninterrupted, a checkpoint every 2 steps (at optimizer steps: accumulation of 2) and at
  // the epoch ends (steps 5, 10, 15), the last 2 kept
  const auto saving = [](const fs::path& dir) {  // every 2 steps, the last 2 kept
    auto o = tiny_options(dir);
    o.save.every_steps = 2, o.save.keep = 2;
    return o;
  };
  const fs::path da = scratch_dir("every_full");
  TinyModel a(TinyModel::Options{true, 3});
  mae::BatchLoader la(data, 8, 4, 17);
  mae::Trainer<TinyModel> ta(a, la, saving(da));
  CHECK(ta.run());
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(da)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"checkpoint-14.safetensors", "checkpoint-15.safetensors",
                                          "checkpoint.safetensors", "log.csv", "mae_final.safetensors"});
  CHECK(slurp(da / "checkpoint.safetensors") == slurp(da / "checkpoint-15.safetensors"));

  // a stop requested while step 7's images load (mid-epoch 2): the loop finishes that step (it
  // ends an accumulation window) and stops with a checkpoint, and no final weights
  struct StopWhileLoading : RandomImages {
    using RandomImages::RandomImages;
    mutable std::atomic<int> loads{0};
    int stop_at = -1;  // the load that requests the stop
    void load(Index i, float* out) const override {
      if (loads++ == stop_at) mae::stop_request() = SIGTERM;
      RandomImages::load(i, out);
    }
  } stopping(20, 1, 12, 12, 5);
  const fs::path db = scratch_dir("every_stopped");
  {
    TinyModel b(TinyModel::Options{true, 3});
    mae::BatchLoader lb(stopping, 8, 4, 17);
    mae::Trainer<TinyModel> tb(b, lb, saving(db));
    stopping.loads = 0, stopping.stop_at = 6 * 4;  // the first image of step 7
    CHECK_FALSE(tb.run());
    mae::stop_request() = 0;
    CHECK(tb.stop_signal() == SIGTERM);
    CHECK(tb.steps_done() == 7);
    CHECK_FALSE(fs::exists(db / "mae_final.safetensors"));
    CHECK(fs::exists(db / "checkpoint-7.safetensors"));
  }
  // a stop requested while an epoch's last step loads (step 5, accumulation off: an optimizer
  // step): the epoch's checkpoint serves the stop, written once (the file the epoch's end wrote,
  // the same inode, is the one left)
  {
    const fs::path de = scratch_dir("every_stopped_at_epoch_end");
    TinyModel e(TinyModel::Options{true, 3});
    mae::BatchLoader le(stopping, 8, 4, 17);
    auto o = saving(de);
    o.accum_iter = 1;
    mae::Trainer<TinyModel> te(e, le, o);
    const auto inode = [&] {
      struct stat st {};
      return ::stat((de / "checkpoint-5.safetensors").c_str(), &st) == 0 ? st.st_ino : ino_t(0);
    };
    ino_t at_epoch_end = 0;
    stopping.loads = 0, stopping.stop_at = 4 * 4;  // the first image of step 5
    CHECK_FALSE(te.run([&](int) { at_epoch_end = inode(); }));
    mae::stop_request() = 0;
    CHECK(te.steps_done() == 5);
    CHECK(at_epoch_end != 0);
    CHECK(inode() == at_epoch_end);
    // and that epoch-end checkpoint resumes bit for bit, as the mid-epoch one below
    const auto run_to_end = [&](const fs::path& dir, const std::string& resume) {
      TinyModel m(TinyModel::Options{true, resume.empty() ? 3ull : 999ull});
      mae::BatchLoader l(data, 8, 4, 17);
      auto oe = saving(dir);
      oe.accum_iter = 1;
      mae::Trainer<TinyModel> t(m, l, oe);
      if (!resume.empty()) t.resume(resume);
      CHECK(t.run());
      return std::vector<float>(m.parameters().data(), m.parameters().data() + m.parameters().size());
    };
    const std::vector<float> whole = run_to_end(scratch_dir("every_epoch_end_whole"), "");
    CHECK(run_to_end(de, (de / "checkpoint.safetensors").string()) == whole);
  }
  const std::string log_before = slurp(db / "log.csv");
  CHECK(std::count(log_before.begin(), log_before.end(), '\n') == 8);  // header + 7 steps
  TinyModel c(TinyModel::Options{true, 999});
  mae::BatchLoader lc(data, 8, 4, 17);
  mae::Trainer<TinyModel> tc(c, lc, saving(db));
  tc.resume((db / "checkpoint.safetensors").string());
  CHECK(tc.steps_done() == 7);
  CHECK(tc.run());
  CHECK(std::memcmp(a.parameters().data(), c.parameters().data(), sizeof(float) * a.parameters().size()) == 0);
  CHECK(slurp(db / "mae_final.safetensors") == slurp(da / "mae_final.safetensors"));
}

TEST_CASE("a resumed run's log is cut back to the checkpoint's step: no step twice") {
  RandomImages data(8, 1, 8, 8, 6);
  const fs::path d = scratch_dir("log_trim");
  {
    TinyModel m;
    write_tiny_checkpoint(m, data, d, 2);  // checkpoint and log at step 2
  }
  {  // a run that went on to step 3 after the checkpoint, then was killed: its log has step 3
    std::ofstream(d / "log.csv", std::ios::app) << "3,1,0.5,1e-3,10.0\n";
  }
  TinyModel m;
  mae::BatchLoader l(data, 8, 4, 1);
  auto o = tiny_options(d);
  o.max_steps = 4;
  mae::Trainer<TinyModel> t(m, l, o);
  t.resume((d / "checkpoint.safetensors").string());
  CHECK_FALSE(t.run());
  const std::string log = slurp(d / "log.csv");
  CHECK(std::count(log.begin(), log.end(), '\n') == 5);  // header + steps 1, 2, 3, 4
  CHECK(log.find("\n3,1,0.5,") == std::string::npos);    // the killed run's step 3 is gone
}

TEST_CASE("a run that would train nothing is refused before it starts") {
  RandomImages data(8, 1, 8, 8, 6);
  TinyModel m;
  mae::BatchLoader l(data, 8, 4, 1);  // 2 steps per epoch
  auto o = tiny_options(scratch_dir("nothing"));
  o.accum_iter = 3;  // more micro-batches per optimizer step than an epoch has
  CHECK_THROWS_WITH_AS(mae::Trainer<TinyModel>(m, l, o), doctest::Contains("no optimizer step would ever happen"),
                       mae::Error);
  o.accum_iter = 2;
  o.max_steps = 0;
  CHECK_THROWS_WITH_AS(mae::Trainer<TinyModel>(m, l, o), doctest::Contains("at least one step"), mae::Error);
  o.max_steps = -1;
  o.warmup_epochs = o.epochs;
  CHECK_THROWS_WITH_AS(mae::Trainer<TinyModel>(m, l, o), doctest::Contains("must be shorter than the run"), mae::Error);
  o.warmup_epochs = 1;
  o.weight_decay = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH_AS(mae::Trainer<TinyModel>(m, l, o), doctest::Contains("weight_decay"), mae::Error);
  o.weight_decay = 0.05;
  mae::Trainer<TinyModel> fine(m, l, o);  // and with the values mended, it starts
  CHECK(fine.steps_per_epoch() == 2);
}

namespace {
// Labelled random RGB images, 12x12 (the loader crops and resizes them to the model's 8x8).
class LabelledImages : public mae::ImageDataset {
 public:
  explicit LabelledImages(Index n) : n_(n) {
    mae::Rng r(77);
    px_.resize(static_cast<std::size_t>(n * 3 * 12 * 12));
    for (auto& v : px_) v = static_cast<float>(r.uniform());
  }
  Index size() const override { return n_; }
  Index channels() const override { return 3; }
  Index height(Index) const override { return 12; }
  Index width(Index) const override { return 12; }
  void load(Index i, float* out) const override {
    if (loads++ == stop_at) mae::stop_request() = SIGUSR1;  // a stop requested while that image loads
    std::copy(px_.begin() + i * 432, px_.begin() + (i + 1) * 432, out);
  }
  int label(Index i) const override { return static_cast<int>(i % 3); }
  std::string name() const override { return "labelled"; }
  mutable std::atomic<int> loads{0};
  mutable int stop_at = -1;

 private:
  Index n_;
  std::vector<float> px_;
};

using Vit = mae::VisionTransformer<mae::Config<8, 2, 3, 16, 2, 2, 16, 1, 2>>;

struct RecipeRun {
  std::vector<double> losses;
  std::vector<float> params;
};

// Fine-tunes 2 epochs of 3 batches with the reference's recipe (RandAugment, random erasing,
// mixup / cutmix, clip_grad), optionally stopping at max_steps or resuming from a checkpoint.
RecipeRun run_recipe(const std::string& out, mae::Index max_steps, const std::string& resume,
                     const mae::MixupOptions& mix, const std::string& aa, mae::Index save_every = 0,
                     int stop_at_load = -1) {
  static const LabelledImages ds(24);
  ds.loads = 0, ds.stop_at = stop_at_load;
  mae::FinetuneOptions o;
  o.epochs = 2, o.batch_size = 8, o.seed = 5, o.warmup_epochs = 0.5, o.out_dir = out, o.progress = false;
  o.max_steps = max_steps, o.mixup = mix, o.clip_grad = 0.5, o.save.every_steps = save_every;
  mae::AugmentOptions aug;
  aug.rand_augment = aa != "none";
  if (aug.rand_augment) aug.rand_augment_options = mae::RandAugmentOptions::parse(aa);
  aug.erasing.prob = 0.25;
  mae::BatchLoader loader(ds, 8, o.batch_size, o.seed, aug, {0.5, 0.5, 0.5}, {0.3, 0.3, 0.3});
  Vit::Options vo;
  vo.num_classes = 3, vo.seed = 2;
  Vit model(vo);
  mae::Finetuner<Vit> tuner(model, loader, o, [] { return mae::EvalResult{0.5, 1.0, 1}; });
  if (!resume.empty()) tuner.resume(resume);
  tuner.run();
  RecipeRun r;
  for (const auto& h : tuner.history()) r.losses.push_back(h.loss);
  r.params.assign(model.parameters().data(), model.parameters().data() + model.parameters().size());
  return r;
}
}  // namespace

TEST_CASE("fine-tuning with the full recipe resumes bit for bit; a resume with another recipe is refused") {
  const auto dir = mae_test::scratch_dir("recipe");
  const mae::MixupOptions mix;  // 0.8 / 1.0, the reference's
  const std::string aa = "rand-m9-mstd0.5-inc1";
  const RecipeRun full = run_recipe((dir / "full").string(), -1, "", mix, aa);
  REQUIRE(full.losses.size() == 6);
  for (double l : full.losses) CHECK(std::isfinite(l));
  run_recipe((dir / "cut").string(), 4, "", mix, aa);
  const std::string ckpt = (dir / "cut" / "checkpoint.safetensors").string();
  const RecipeRun resumed = run_recipe((dir / "cut").string(), -1, ckpt, mix, aa);
  CHECK(resumed.params == full.params);
  // mixup changes the run (the first loss is ln 3 either way: the head starts near zero)
  const RecipeRun plain = run_recipe((dir / "plain").string(), -1, "", mae::MixupOptions{0.0, 0.0}, aa);
  CHECK(plain.params != full.params);
  CHECK_THROWS_WITH_AS(run_recipe((dir / "cut").string(), -1, ckpt, mae::MixupOptions{0.0, 0.0}, aa),
                       doctest::Contains("mixup = {"), mae::Error);
  CHECK_THROWS_WITH_AS(run_recipe((dir / "cut").string(), -1, ckpt, mix, "rand-m7-mstd0.5-inc1"),
                       doctest::Contains("augment = {"), mae::Error);
  // classifier.safetensors holds the weights at epoch ends and at a max_steps stop; a checkpoint
  // between epoch ends, or at a signal's stop (the run goes on from it), leaves it alone
  run_recipe((dir / "every").string(), 2, "", mix, aa, /*save_every=*/1);
  CHECK(fs::exists(dir / "every" / "checkpoint-1.safetensors"));
  CHECK(fs::exists(dir / "every" / "classifier.safetensors"));  // (max_steps, mid-epoch)
  run_recipe((dir / "signalled").string(), -1, "", mix, aa, /*save_every=*/1, /*stop_at_load=*/8);  // in step 2
  mae::stop_request() = 0;
  CHECK(fs::exists(dir / "signalled" / "checkpoint-1.safetensors"));
  CHECK(fs::exists(dir / "signalled" / "checkpoint-2.safetensors"));
  CHECK_FALSE(fs::exists(dir / "signalled" / "classifier.safetensors"));
}
