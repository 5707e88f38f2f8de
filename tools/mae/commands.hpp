// The `mae` subcommands for one compiled model configuration. Each preset's translation
// unit (presets.cmake generates them) instantiates Commands<Cfg>; main.cpp picks one by
// --model. The loops are the library's (Trainer, Finetuner, fit_linear_probe); what is here
// is the wiring of data, checkpoints and reports.
#pragma once

#include "args.hpp"
#include "data.hpp"

#include <mae/checkpoint.hpp>
#include <mae/classifier.hpp>
#include <mae/data.hpp>
#include <mae/finetune.hpp>
#include <mae/linear_probe.hpp>
#include <mae/metrics.hpp>
#include <mae/model.hpp>
#include <mae/train.hpp>

#include <nlohmann/json.hpp>

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

namespace mae_tool {

using mae::ClassifierInfo;

inline mae::Precision precision_of(bool bf16) { return bf16 ? mae::Precision::bf16 : mae::Precision::fp32; }

inline void set_threads(const RunArgs& r) {
  if (r.threads > 0) mae::set_num_threads(r.threads);
}

// "2 threads", or "4 processes x 2 threads each" under mpirun, and how idle threads wait
// ("GOMP_SPINCOUNT=1000", the program's default, or the user's OMP_WAIT_POLICY)
inline std::string processes(const mae::DataParallel& p) {
  const std::string threads = std::to_string(mae::max_threads()) + (mae::max_threads() == 1 ? " thread" : " threads");
  std::string s = p.ranks > 1 ? std::to_string(p.ranks) + " processes x " + threads + " each" : threads;
  for (const char* v : {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"})
    if (const char* e = std::getenv(v)) s += std::string(", ") + v + "=" + e;
  return s;
}

template <class Cfg>
struct Commands {
  using Model = mae::MaskedAutoencoder<Cfg>;
  using Vit = mae::VisionTransformer<Cfg>;
  static constexpr Index S = Cfg::img_size, C = Cfg::in_chans;

  // --- mae pretrain ----------------------------------------------------------------------
  static int pretrain(PretrainArgs a) {
    set_threads(a.run);
    a.train.seed = a.run.seed, a.train.progress = a.run.progress, a.train.parallel = process_group();
    const bool first = a.train.parallel.rank == 0;  // the process that writes
    const std::string out = a.train.out_dir;
    Model model(typename Model::Options{a.norm_pix, a.train.seed, precision_of(a.bf16)});
    if (!a.init.empty() && a.resume.empty()) {  // a bad file stops here, before the data is read
      model.load_encoder(a.init);
      std::printf("encoder: %s (decoder freshly initialized)\n", a.init.c_str());
    }
    Split train(a.data, "train", C, S, /*labelled=*/false);
    train.verify(a.data.verify);
    const bool has_val = a.data.fashion_mnist() || std::filesystem::is_directory(a.data.data + "/val");
    std::unique_ptr<Split> val;
    if (has_val) val = std::make_unique<Split>(a.data, "val", C, S, /*labelled=*/false);
    const mae::ImageDataset& vis_set = val ? val->dataset() : train.dataset();
    const std::string& ref = a.resume.empty() ? a.init : a.resume;
    const Normalization norm = normalization(a.data, metadata_of(ref), train.dataset(), ref);
    norm.print();

    std::filesystem::create_directories(out);
    mae::BatchLoader loader(train.dataset(), S, a.train.batch_size, a.train.seed, {}, norm.mean, norm.stddev);
    mae::BatchLoader vis_loader(vis_set, S, 1, a.train.seed, {}, norm.mean, norm.stddev);
    const Index nv = std::min<Index>(a.figure_images, vis_set.size());
    std::vector<typename Model::Scalar> vis(static_cast<std::size_t>(nv * C * S * S));
    {
      std::vector<float> f(vis.size());
      for (Index i = 0; i < nv; ++i) vis_loader.plain(i, f.data() + i * C * S * S);
      std::copy(f.begin(), f.end(), vis.begin());
    }
    mae::Trainer<Model> trainer(model, loader, a.train);
    if (!a.resume.empty()) {
      trainer.resume(a.resume);
      std::printf("resumed from %s at step %lld\n", a.resume.c_str(), static_cast<long long>(trainer.steps_done()));
    }
    std::printf(
        "%s on %s: %lld images, %lld steps/epoch, %d epochs, global batch %lld, lr %.3g, %s, norm_pix_loss %s, %s "
        "products\n",
        Cfg::name().c_str(), train.dataset().name().c_str(), static_cast<long long>(train.dataset().size()),
        static_cast<long long>(trainer.steps_per_epoch()), a.train.epochs,
        static_cast<long long>(a.train.global_batch()), a.train.effective_lr(), processes(a.train.parallel).c_str(),
        a.norm_pix ? "on" : "off", a.bf16 ? "bf16" : "fp32");
    std::fflush(stdout);
    Stopwatch t;
    auto figures = [&](int epoch) {
      if (!first) return;
      char name[64];
      std::snprintf(name, sizeof name, "/reconstruction_epoch%03d.png", epoch + 1);
      mae::save_reconstruction_grid(out + name, model, vis_loader, vis, nv, a.train.mask_ratio, 2024);
      std::filesystem::copy_file(out + name, out + "/reconstruction.png",
                                 std::filesystem::copy_options::overwrite_existing);
      mae::plot_loss_curve(trainer.log_path(), out + "/loss.png");
      std::printf("epoch %d: checkpoint %s, figures %s%s, loss.png\n", epoch + 1, trainer.checkpoint_path().c_str(),
                  out.c_str(), name);
      std::fflush(stdout);
    };
    const bool finished = trainer.run(figures);
    const auto& h = trainer.history();
    if (!h.empty())
      std::printf("%s after %lld steps in %.0f s: first loss %.4f, last loss %.4f, %.0f images/s\n",
                  finished ? "done" : "stopped (--max-steps)", static_cast<long long>(trainer.steps_done()),
                  t.seconds(), h.front().loss, h.back().loss, h.back().images_per_s);
    if (first) std::printf("weights: %s\n", trainer.weights_path().c_str());
    return 0;
  }

  // --- mae finetune ----------------------------------------------------------------------
  static int finetune(FinetuneArgs a) {
    set_threads(a.run);
    a.ft.seed = a.run.seed, a.ft.progress = a.run.progress, a.ft.parallel = process_group();
    Split train(a.data, "train", C, S, true), val(a.data, "val", C, S, true);
    require_same_classes(train, val);
    const std::vector<std::string> classes = train.classes();
    typename Vit::Options vo;
    vo.num_classes = static_cast<Index>(classes.size()), vo.drop_path = a.drop_path;
    vo.label_smoothing = a.smoothing, vo.global_pool = a.pool == "avg", vo.seed = a.ft.seed;
    vo.precision = precision_of(a.bf16);
    Vit model(vo);
    if (!a.init.empty() && a.resume.empty()) {
      const Index g0 = model.load_encoder(a.init);
      std::printf("encoder: %s\n", a.init.c_str());
      if (g0 != Vit::Config::grid)  // the official interpolate_pos_embed's message
        std::printf("pos_embed interpolated from %lldx%lld to %lldx%lld patches\n", static_cast<long long>(g0),
                    static_cast<long long>(g0), static_cast<long long>(Vit::Config::grid),
                    static_cast<long long>(Vit::Config::grid));
    } else if (a.resume.empty()) {
      std::printf("encoder: randomly initialized (no --init)\n");
    }
    train.verify(a.data.verify), val.verify(a.data.verify);
    const std::string& ref = a.resume.empty() ? a.init : a.resume;
    const Normalization norm = normalization(a.data, metadata_of(ref), train.dataset(), ref);
    norm.print();
    mae::AugmentOptions aug;
    aug.scale_min = a.crop_min, aug.random_resized_crop = a.crop_min < 1.0;
    aug.rand_augment = a.aa != "none";
    if (aug.rand_augment) aug.rand_augment_options = mae::RandAugmentOptions::parse(a.aa);
    aug.erasing.prob = a.reprob;
    a.ft.mixup.label_smoothing = a.smoothing;  // timm's Mixup carries the smoothing into the targets
    mae::BatchLoader train_loader(train.dataset(), S, a.ft.batch_size, a.ft.seed, aug, norm.mean, norm.stddev);
    mae::BatchLoader val_loader(val.dataset(), S, 1, a.ft.seed, {}, norm.mean, norm.stddev);
    const std::vector<int> yval = val.labels();
    const double cp = crop_pct(a.data, S);
    auto evaluate = [&] {
      return mae::evaluate_classifier(model, val.dataset().size(), yval.data(),
                                      [&](Index i, float* d) { val_loader.evaluation(i, d, cp); });
    };
    mae::write_classes(a.ft.metadata, classes);
    if (!a.init.empty()) a.ft.metadata[mae::keys::init] = a.init;
    if (!a.resume.empty())  // a resumed run writes the same files as an uninterrupted one
      if (const auto init = mae::metadata_value(metadata_of(a.resume), mae::keys::init))
        a.ft.metadata[mae::keys::init] = *init;
    mae::Finetuner<Vit> tuner(model, train_loader, a.ft, evaluate);
    if (!a.resume.empty()) {
      tuner.resume(a.resume);
      std::printf("resumed from %s at step %lld\n", a.resume.c_str(), static_cast<long long>(tuner.steps_done()));
    }
    char clip_buf[32] = "off";
    if (a.ft.clip_grad > 0) std::snprintf(clip_buf, sizeof clip_buf, "%g", a.ft.clip_grad);
    const std::string clip = clip_buf;
    std::printf(
        "%s on %s: %lld images, %zu classes, %lld steps/epoch, %d epochs, global batch %lld, lr %.3g, layer decay "
        "%.2f, drop path %.2f, smoothing %.2f, crop scale [%.2f, 1], RandAugment %s, reprob %.2f, mixup %.2f, cutmix "
        "%.2f, clip_grad %s, %s\n",
        model.name().c_str(), train.dataset().name().c_str(), static_cast<long long>(train.dataset().size()),
        classes.size(), static_cast<long long>(tuner.steps_per_epoch()), a.ft.epochs,
        static_cast<long long>(a.ft.global_batch()), a.ft.effective_lr(), a.ft.layer_decay, vo.drop_path,
        vo.label_smoothing, aug.random_resized_crop ? aug.scale_min : 1.0, a.aa.c_str(), a.reprob,
        a.ft.mixup.mixup_alpha, a.ft.mixup.cutmix_alpha,
        clip.c_str(), processes(a.ft.parallel).c_str());
    std::fflush(stdout);
    Stopwatch total;
    const bool finished = tuner.run([&](int epoch, const mae::EvalResult& r) {
      std::printf("epoch %d: val accuracy %.2f%%, val loss %.4f (%.0f s so far)\n", epoch + 1, 100 * r.accuracy, r.loss,
                  total.seconds());
      std::fflush(stdout);
    });
    if (!finished)
      std::printf("stopped after %lld steps (--max-steps): checkpoint %s\n", static_cast<long long>(tuner.steps_done()),
                  tuner.checkpoint_path().c_str());
    else if (!tuner.evaluations().empty())
      std::printf("fine-tuning (%s): VAL ACCURACY %.2f%% after %d epochs, %.0f s\n",
                  a.init.empty() && a.resume.empty() ? "from scratch" : "from a checkpoint",
                  100 * tuner.evaluations().back().accuracy, a.ft.epochs, total.seconds());
    std::printf("classifier: %s\n", tuner.classifier_path().c_str());
    return 0;
  }

  // --- the encoder whose features extract / knn / probe use -----------------------------
  struct Encoder {
    std::unique_ptr<Vit> model;
    std::map<std::string, std::string> meta;
    bool avg = false;
    int block = -1;
    std::string description;

    Eigen::MatrixXf features() const {
      if (block < 0) return model->features().template cast<float>();
      const auto x = model->block_output(block);  // (B*(1+L), D)
      const Index B = x.rows() / Vit::T;
      Eigen::MatrixXf f(B, Vit::D);
      for (Index n = 0; n < B; ++n)
        f.row(n) =
            avg ? Eigen::RowVectorXf(x.middleRows(n * Vit::T + 1, Vit::L).colwise().mean().template cast<float>())
                : Eigen::RowVectorXf(x.row(n * Vit::T).template cast<float>());
      return f;
    }
  };

  static Encoder encoder(const FeatureArgs& f, std::uint64_t seed) {
    Encoder e;
    e.meta = metadata_of(f.checkpoint);
    e.block = f.block;
    if (f.block == 0 || f.block > Vit::kDepth) throw mae::Error("--block must be in 1.." + std::to_string(Vit::kDepth));
    typename Vit::Options vo;
    vo.seed = seed, vo.drop_path = 0;
    if (e.meta.count(mae::keys::classifier)) {  // a fine-tuned classifier: its own pooling
      const ClassifierInfo ci = mae::read_classifier_info(e.meta, f.checkpoint);
      vo.num_classes = ci.classes, vo.global_pool = ci.global_pool;
      e.model = std::make_unique<Vit>(vo);
      e.model->load(f.checkpoint);
    } else {
      vo.num_classes = 1, vo.global_pool = f.pool == "avg";
      e.model = std::make_unique<Vit>(vo);
      if (!f.checkpoint.empty()) e.model->load_encoder(f.checkpoint);
    }
    e.avg = vo.global_pool;
    e.description = std::string(e.avg ? "mean of patch tokens" : "cls token") +
                    (f.block < 0 ? (e.avg ? " + fc_norm" : " + norm") : " of block " + std::to_string(f.block)) +
                    ", encoder " + (f.checkpoint.empty() ? "random init" : f.checkpoint);
    return e;
  }

  // Features (n, F) of a split under the evaluation transform.
  static std::vector<float> encode(Encoder& e, const mae::BatchLoader& loader, Index n, Index batch, double cp) {
    return mae::encode_dataset(
        *e.model, n, batch, [&](Index i, float* d) { loader.evaluation(i, d, cp); },
        [&](const Vit&) { return e.features(); });
  }

  // --- mae extract -----------------------------------------------------------------------
  static int extract(const ExtractArgs& a) {
    set_threads(a.run);
    Encoder e = encoder(a.features, a.run.seed);
    Split split(a.data, a.split, C, S, false);
    const auto& ds = split.dataset();
    const Normalization norm = normalization(a.data, e.meta, ds, a.features.checkpoint);
    mae::BatchLoader loader(ds, S, 1, 0, {}, norm.mean, norm.stddev);
    Stopwatch t;
    const std::vector<float> f = encode(e, loader, ds.size(), a.batch, crop_pct(a.data, S));
    const Index F = static_cast<Index>(f.size()) / ds.size();
    std::vector<float> labels(static_cast<std::size_t>(ds.size()));
    std::vector<std::string> files(labels.size());
    for (Index i = 0; i < ds.size(); ++i) labels[i] = static_cast<float>(ds.label(i)), files[i] = ds.item_name(i);
    mae::Metadata meta{{"format", "pt"},
                       {mae::keys::files, nlohmann::json(files).dump()},
                       {mae::keys::features, e.description},
                       {mae::keys::config, Cfg::name()}};
    mae::write_classes(meta, split.classes());
    mae::safetensors::save(a.out,
                           {mae::safetensors::TensorOut::of<float>("features", {ds.size(), F}, f.data()),
                            mae::safetensors::TensorOut::of<float>("labels", {ds.size()}, labels.data())},
                           meta);
    std::printf("%s: features (%lld, %lld) of %s [%s] in %.1f s (%.0f images/s), labels, file names\n", a.out.c_str(),
                static_cast<long long>(ds.size()), static_cast<long long>(F), ds.name().c_str(), e.description.c_str(),
                t.seconds(), static_cast<double>(ds.size()) / std::max(t.seconds(), 1e-9));
    return 0;
  }

  // --- mae knn ---------------------------------------------------------------------------
  static int knn(const KnnArgs& a) {
    set_threads(a.run);
    Encoder e = encoder(a.features, a.run.seed);
    Split train(a.data, "train", C, S, true), val(a.data, "val", C, S, true);
    require_same_classes(train, val);
    const Normalization norm = normalization(a.data, e.meta, train.dataset(), a.features.checkpoint);
    mae::BatchLoader tl(train.dataset(), S, 1, 0, {}, norm.mean, norm.stddev);
    mae::BatchLoader vl(val.dataset(), S, 1, 0, {}, norm.mean, norm.stddev);
    Stopwatch t;
    const double cp = crop_pct(a.data, S);
    const std::vector<float> ft = encode(e, tl, train.dataset().size(), a.batch, cp);
    const std::vector<float> fv = encode(e, vl, val.dataset().size(), a.batch, cp);
    const double enc_s = t.seconds();
    const Index F = static_cast<Index>(ft.size()) / train.dataset().size();
    const std::vector<int> yt = train.labels(), yv = val.labels();
    const auto r =
        mae::knn_classify(ft.data(), yt.data(), train.dataset().size(), fv.data(), yv.data(), val.dataset().size(), F,
                          static_cast<Index>(train.classes().size()), a.k, a.temperature);
    std::printf(
        "%lld-NN (T = %.3g) on %s [%s]: TOP-1 %.2f%%, top-5 %.2f%% (%lld train, %lld val images; encode %.0f s, "
        "vote %.1f s)\n",
        static_cast<long long>(a.k), a.temperature, train.dataset().name().c_str(), e.description.c_str(),
        100 * r.top1(), 100 * r.top5(), static_cast<long long>(train.dataset().size()),
        static_cast<long long>(val.dataset().size()), enc_s, t.seconds() - enc_s);
    return 0;
  }

  // --- mae probe -------------------------------------------------------------------------
  static int probe(ProbeArgs a) {
    set_threads(a.run);
    a.probe.seed = a.run.seed;
    std::filesystem::create_directories(a.out);
    Stopwatch total;
    FeatureArgs fa{a.checkpoint, a.pool, a.block};
    Encoder e;
    if (!a.raw_pixels) e = encoder(fa, a.run.seed);
    Split train(a.data, "train", C, S, true), val(a.data, "val", C, S, true);
    require_same_classes(train, val);
    train.verify(a.data.verify), val.verify(a.data.verify);
    const Normalization norm = normalization(a.data, e.meta, train.dataset(), a.checkpoint);
    mae::BatchLoader tl(train.dataset(), S, 1, 0, {}, norm.mean, norm.stddev);
    mae::BatchLoader vl(val.dataset(), S, 1, 0, {}, norm.mean, norm.stddev);
    const Index nt = train.dataset().size(), nv = val.dataset().size(), K = static_cast<Index>(train.classes().size());
    const std::vector<int> yt = train.labels(), yv = val.labels();
    const double cp = crop_pct(a.data, S);
    Stopwatch enc;
    std::vector<float> ft, fv;
    if (a.raw_pixels) {
      constexpr Index kPixels = C * S * S;
      std::printf("features: raw pixels (%lld)\n", static_cast<long long>(kPixels));
      ft.resize(static_cast<std::size_t>(nt * kPixels)), fv.resize(static_cast<std::size_t>(nv * kPixels));
#pragma omp parallel for schedule(static)
      for (Index i = 0; i < nt; ++i) tl.evaluation(i, ft.data() + i * kPixels, cp);
#pragma omp parallel for schedule(static)
      for (Index i = 0; i < nv; ++i) vl.evaluation(i, fv.data() + i * kPixels, cp);
    } else {
      std::printf("features: %s, %lld + %lld images...\n", e.description.c_str(), static_cast<long long>(nt),
                  static_cast<long long>(nv));
      std::fflush(stdout);
      ft = encode(e, tl, nt, 256, cp);
      fv = encode(e, vl, nv, 256, cp);
    }
    const Index F = static_cast<Index>(ft.size()) / nt;
    const double encode_s = enc.seconds();
    std::printf("encoded in %.1f s (%lld features per image)\n", encode_s, static_cast<long long>(F));
    // the probe: BatchNorm (no affine) + linear, LARS, warmup + cosine (main_linprobe.py)
    mae::LinearProbe<float> probe(F, K, a.probe.seed);
    // LARS moves a weight by about lr * 0.001 of its norm per step: the reference's recipe
    // (blr 0.1, batch 4096, 90 epochs) is sized for ImageNet's 10^4 steps
    const Index pb = std::min(a.probe.batch_size, nt), steps = static_cast<Index>(a.probe.epochs) * (nt / pb);
    const double probe_lr = a.probe.blr * static_cast<double>(pb) / 256;
    if (static_cast<double>(steps) * probe_lr < 1000)
      std::fprintf(stderr,
                   "note: %lld LARS steps at lr %.3g is little for the probe to move (the reference's recipe is sized "
                   "for ImageNet); on a small folder try --batch 256 --blr 20, or more --epochs\n",
                   static_cast<long long>(steps), probe_lr);
    std::ofstream log(a.out + "/log.csv");
    log << "epoch,train_loss,lr,val_accuracy,val_loss\n";
    Stopwatch train_time;
    const mae::ProbeEpoch last = mae::fit_linear_probe(
        probe, ft.data(), yt.data(), nt, fv.data(), yv.data(), nv, a.probe, [&](const mae::ProbeEpoch& ep) {
          log << ep.epoch << ',' << ep.train_loss << ',' << ep.lr << ',' << ep.test_accuracy << ',' << ep.test_loss
              << std::endl;
          if (a.run.progress && (ep.epoch % 10 == 0 || ep.epoch == a.probe.epochs)) {
            std::printf("epoch %d/%d  train loss %.4f  lr %.3g  val accuracy %.2f%%\n", ep.epoch, a.probe.epochs,
                        ep.train_loss, ep.lr, 100 * ep.test_accuracy);
            std::fflush(stdout);
          }
        });
    mae::Metadata probe_meta{{mae::keys::features, a.raw_pixels ? "raw_pixels" : e.description}};
    mae::write_classes(probe_meta, train.classes());
    probe.save(a.out + "/probe.safetensors", probe_meta);
    const auto tr = probe.evaluate(ft.data(), yt.data(), nt);
    std::printf(
        "linear probe (%s): train accuracy %.2f%%, VAL ACCURACY %.2f%% (%lld images); encode %.0f s, train %.0f s, "
        "total %.0f s\n",
        a.raw_pixels ? "raw pixels" : (a.checkpoint.empty() ? "random-init encoder" : "MAE encoder"), 100 * tr.first,
        100 * last.test_accuracy, static_cast<long long>(nv), encode_s, train_time.seconds(), total.seconds());
    return 0;
  }

  // --- a fine-tuned classifier --------------------------------------------------------------
  static std::unique_ptr<Vit> classifier(const std::string& path, const ClassifierInfo& ci) {
    typename Vit::Options vo;
    vo.num_classes = ci.classes, vo.global_pool = ci.global_pool, vo.drop_path = 0;
    auto m = std::make_unique<Vit>(vo);
    m->load(path);
    return m;
  }

  // Softmax of each row of the last forward's logits (evaluation: no smoothing).
  static Eigen::MatrixXd probabilities(const Vit& m) {
    Eigen::MatrixXd z = m.logits().template cast<double>();
    for (Index i = 0; i < z.rows(); ++i) {
      z.row(i).array() -= z.row(i).maxCoeff();
      z.row(i) = z.row(i).array().exp().matrix();
      z.row(i) /= z.row(i).sum();
    }
    return z;
  }

  // --- mae eval --------------------------------------------------------------------------
  static int eval(const EvalArgs& a) {
    set_threads(a.run);
    const auto meta = metadata_of(a.checkpoint);
    const ClassifierInfo ci = mae::read_classifier_info(meta, a.checkpoint);
    auto model = classifier(a.checkpoint, ci);
    Split split(a.data, a.split, C, S, true);
    const auto& ds = split.dataset();
    if (split.classes() != ci.class_names)
      throw mae::Error(ds.name() + ": its classes differ from the ones " + a.checkpoint + " was trained on (" +
                       nlohmann::json(ci.class_names).dump() + ")");
    split.verify(a.data.verify);
    const Normalization norm = normalization(a.data, meta, ds, a.checkpoint);
    mae::BatchLoader loader(ds, S, 1, 0, {}, norm.mean, norm.stddev);
    const double cp = crop_pct(a.data, S);
    mae::ClassificationReport r(ci.classes);
    Stopwatch t;
    model->for_each_batch(
        ds.size(), a.batch, [&](Index i, float* d) { loader.evaluation(i, d, cp); },
        [&](Index s, Index B) {
          const Eigen::MatrixXd p = probabilities(*model);
          for (Index i = 0; i < B; ++i) {
            const int y = ds.label(s + i);
            const Eigen::RowVectorXd row = p.row(i);
            r.add(row.data(), y, -std::log(std::max(p(i, y), 1e-300)));
          }
        });
    const double secs = t.seconds();
    std::printf("%s on %s (%lld images): TOP-1 %.2f%%, top-5 %.2f%%, mean loss %.4f (%.1f s, %.0f images/s)\n",
                a.checkpoint.c_str(), ds.name().c_str(), static_cast<long long>(r.count()), 100 * r.top1(),
                100 * r.top5(), r.mean_loss(), secs, static_cast<double>(r.count()) / std::max(secs, 1e-9));
    const std::string out = a.out.empty() ? std::filesystem::path(a.checkpoint).parent_path().string() : a.out;
    if (!out.empty()) std::filesystem::create_directories(out);
    const std::string dir = out.empty() ? "" : out + "/";
    std::string csv = "class,images,accuracy\n";
    for (Index k = 0; k < ci.classes; ++k) {
      char line[64];
      std::snprintf(line, sizeof line, ",%lld,%.6f\n", static_cast<long long>(r.class_count(k)), r.class_accuracy(k));
      csv += csv_field(ci.class_names[k]) + line;
      std::printf("  %-24s %6lld images  %6.2f%%\n", ci.class_names[k].c_str(),
                  static_cast<long long>(r.class_count(k)), 100 * r.class_accuracy(k));
    }
    mae::safetensors::write_file_atomic(dir + "eval_" + a.split + ".csv", csv);
    const std::string png = dir + "confusion_" + a.split + ".png";
    if (mae::plot_confusion_matrix(png, r, ci.class_names, "confusion matrix, " + ds.name()))
      std::printf("per-class accuracy: %seval_%s.csv, confusion matrix: %s\n", dir.c_str(), a.split.c_str(),
                  png.c_str());
    return 0;
  }

  // --- mae predict -----------------------------------------------------------------------
  static int predict(const PredictArgs& a) {
    set_threads(a.run);
    namespace fs = std::filesystem;
    const auto meta = metadata_of(a.checkpoint);
    const ClassifierInfo ci = mae::read_classifier_info(meta, a.checkpoint);
    auto model = classifier(a.checkpoint, ci);
    std::vector<std::string> files;
    for (const auto& in : a.inputs) {
      if (fs::is_directory(in)) {
        std::vector<std::string> found;
        try {
          for (const auto& e : fs::recursive_directory_iterator(in, fs::directory_options::follow_directory_symlink))
            if (e.is_regular_file() && mae::is_image_file(e.path())) found.push_back(e.path().string());
        } catch (const fs::filesystem_error& e) {
          throw mae::Error(in + ": " + e.what());
        }
        if (found.empty()) throw mae::Error(in + ": holds no " + mae::kImageFormats + " images");
        std::sort(found.begin(), found.end());
        files.insert(files.end(), found.begin(), found.end());
      } else {
        files.push_back(in);
      }
    }
    mae::ImageFolderOptions o;
    o.channels = C, o.max_pixels = a.data.max_pixels, o.max_side = a.data.max_side > 0 ? a.data.max_side : 4 * S;
    const mae::ImageFolder images(files, o);
    const Normalization norm = normalization(a.data, meta, images, a.checkpoint);
    if (norm.source != a.checkpoint && a.data.normalize == "auto")
      std::fprintf(stderr, "note: %s holds no normalization statistics; using the images' own\n", a.checkpoint.c_str());
    mae::BatchLoader loader(images, S, 1, 0, {}, norm.mean, norm.stddev);
    const double cp = crop_pct(a.data, S);
    const Index k = std::min<Index>(a.topk, ci.classes);
    std::string csv = "path";
    for (Index j = 1; j <= k; ++j) csv += ",label" + std::to_string(j) + ",prob" + std::to_string(j);
    csv += "\n";
    Stopwatch t;
    model->for_each_batch(
        images.size(), a.batch, [&](Index i, float* d) { loader.evaluation(i, d, cp); },
        [&](Index s, Index B) {
          const Eigen::MatrixXd p = probabilities(*model);
          std::vector<Index> order(static_cast<std::size_t>(ci.classes));
          for (Index i = 0; i < B; ++i) {
            std::iota(order.begin(), order.end(), Index{0});
            std::stable_sort(order.begin(), order.end(), [&](Index x, Index y) { return p(i, x) > p(i, y); });
            csv += csv_field(images.item_name(s + i));
            for (Index j = 0; j < k; ++j) {
              char prob[32];
              std::snprintf(prob, sizeof prob, ",%.6f", p(i, order[j]));
              csv += "," + csv_field(ci.class_names[order[j]]) + prob;
            }
            csv += "\n";
          }
        });
    mae::safetensors::write_file_atomic(a.out, csv);
    std::printf("%s: top-%lld labels of %lld images (%.1f s)\n", a.out.c_str(), static_cast<long long>(k),
                static_cast<long long>(images.size()), t.seconds());
    return 0;
  }

  // --- mae reconstruct -------------------------------------------------------------------
  static int reconstruct(const ReconstructArgs& a) {
    set_threads(a.run);
    const auto meta = metadata_of(a.checkpoint);
    const bool norm_pix = mae::metadata_value(meta, mae::keys::norm_pix_loss) == std::optional<std::string>("1");
    Model model(typename Model::Options{norm_pix, a.run.seed});
    model.load(a.checkpoint, /*strict=*/false);  // a training checkpoint's optimizer state is ignored
    Split split(a.data, a.split, C, S, false);
    const auto& ds = split.dataset();
    const Normalization norm = normalization(a.data, meta, ds, a.checkpoint);
    mae::BatchLoader loader(ds, S, 1, 0, {}, norm.mean, norm.stddev);
    const Index n = std::min<Index>(a.images, ds.size());
    std::vector<float> f(static_cast<std::size_t>(n * C * S * S));
    for (Index i = 0; i < n; ++i) loader.plain(i, f.data() + i * C * S * S);
    std::vector<typename Model::Scalar> imgs(f.begin(), f.end());
    mae::save_reconstruction_grid(a.out, model, loader, imgs, n, a.mask_ratio, a.run.seed);
    std::printf("%s: %lld images of %s, mask ratio %.2f (original | masked | reconstruction | + visible)\n",
                a.out.c_str(), static_cast<long long>(n), ds.name().c_str(), a.mask_ratio);
    return 0;
  }
};

}  // namespace mae_tool
