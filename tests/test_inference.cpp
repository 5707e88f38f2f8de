// inference/: the normalization a command chooses, a classifier's evaluation and
// predictions, the features of an encoder (pooled, per token, any block), the CSV reports,
// the classification report and the weighted k-NN vote.
#include "test_util.hpp"

#include <mae/inference/classify.hpp>
#include <mae/inference/features.hpp>
#include <mae/inference/normalization.hpp>

#include <cmath>
#include <string>
#include <vector>

using mae::Index;
namespace fs = std::filesystem;

namespace {
using Cfg = mae::Config<8, 2, 3, 16, 2, 2, 16, 1, 2>;  // 8x8 RGB, 16 patches, D = 16, 2 blocks
using Vit = mae::VisionTransformer<Cfg>;
constexpr Index kT = Vit::T, kD = Vit::D, kChw = 3 * 8 * 8;

// n labelled images of the model's size, label i % classes, pixel values from a seed.
class Images : public mae::ImageDataset {
 public:
  Images(Index n, int classes, std::uint64_t seed) : n_(n), K_(classes), px_(mae_test::random_floats(n * kChw, seed)) {
    for (auto& v : px_) v = 0.5f + 0.5f * v;
  }
  Index size() const override { return n_; }
  Index channels() const override { return 3; }
  Index height(Index) const override { return 8; }
  Index width(Index) const override { return 8; }
  void load(Index i, float* out) const override {
    std::copy(px_.begin() + i * kChw, px_.begin() + (i + 1) * kChw, out);
  }
  int label(Index i) const override { return static_cast<int>(i % K_); }
  std::string name() const override { return "images"; }

 private:
  Index n_;
  int K_;
  std::vector<float> px_;
};

// image(i, dst) of the library's loops: the images as they are (already the model's size).
auto as_is(const Images& ds) {
  return [&ds](Index i, float* d) { ds.load(i, d); };
}

Vit::Options classifier_options(Index classes, bool global_pool) {
  Vit::Options o;
  o.num_classes = classes, o.global_pool = global_pool, o.drop_path = 0, o.seed = 3;
  return o;
}

// A classifier whose head gives distinct logits (the fresh head's are ~1e-5 apart).
void spread_head(Vit& m, std::uint64_t seed) {
  const auto w = mae_test::random_floats(m.num_classes() * kD, seed);
  std::copy(w.begin(), w.end(), m.params().head.weight);
}
}  // namespace

TEST_CASE("choose_normalization: the checkpoint's (a timm or HF folder's too), else ImageNet's or the images'") {
  const Images ds(6, 2, 1);
  std::vector<double> mean, stddev;
  mae::dataset_mean_std(ds, mean, stddev);
  // no checkpoint: the images' own
  auto n = mae::choose_normalization(mae::NormalizeFrom::automatic, {}, "", ds);
  CHECK(n.mean == mean);
  CHECK(n.stddev == stddev);
  CHECK(n.source == "images");
  // a checkpoint of ours with statistics: those, named by its path
  mae::Metadata meta{{mae::keys::config, Cfg::name()}};
  mae::write_normalization(meta, {0.1, 0.2, 0.3}, {0.4, 0.5, 0.6});
  n = mae::choose_normalization(mae::NormalizeFrom::automatic, meta, "run/mae_final.safetensors", ds);
  CHECK(n.mean == std::vector<double>{0.1, 0.2, 0.3});
  CHECK(n.stddev == std::vector<double>{0.4, 0.5, 0.6});
  CHECK(n.source == "run/mae_final.safetensors");
  // dataset: the images' even so
  n = mae::choose_normalization(mae::NormalizeFrom::dataset, meta, "run/mae_final.safetensors", ds);
  CHECK(n.mean == mean);
  // ours without statistics: the images'
  n = mae::choose_normalization(mae::NormalizeFrom::automatic, {{mae::keys::config, Cfg::name()}}, "x", ds);
  CHECK(n.source == "images");
  // weights from elsewhere (no mae.config: converted official ones), or asked for: ImageNet's
  n = mae::choose_normalization(mae::NormalizeFrom::automatic, {{"format", "pt"}}, "official.safetensors", ds);
  CHECK(n.source == "ImageNet");
  CHECK(n.mean == std::vector<double>{0.485, 0.456, 0.406});
  CHECK(n.stddev == std::vector<double>{0.229, 0.224, 0.225});
  n = mae::choose_normalization(mae::NormalizeFrom::imagenet, meta, "run/mae_final.safetensors", ds);
  CHECK(n.source == "ImageNet");
  // a timm or HF folder carries its statistics (interchange::open_weights puts them in the
  // metadata, without mae.config): those, not ImageNet's
  mae::Metadata foreign{{"format", "pt"}};
  mae::write_normalization(foreign, {0.5, 0.5, 0.5}, {0.25, 0.25, 0.25});
  n = mae::choose_normalization(mae::NormalizeFrom::automatic, foreign, "timm_folder", ds);
  CHECK(n.source == "timm_folder");
  CHECK(n.stddev == std::vector<double>{0.25, 0.25, 0.25});
  // statistics for another channel count are refused, naming the checkpoint
  mae::Metadata gray{{mae::keys::config, Cfg::name()}};
  mae::write_normalization(gray, {0.5}, {0.2});
  CHECK_THROWS_WITH_AS(mae::choose_normalization(mae::NormalizeFrom::automatic, gray, "gray.safetensors", ds),
                       doctest::Contains("gray.safetensors"), mae::Error);
}

TEST_CASE("classifier: probabilities() is the softmax of the logits after a forward without labels too") {
  Vit m(classifier_options(4, true));
  spread_head(m, 9);
  const auto x = mae_test::random_floats(5 * kChw, 5);
  const int labels[3] = {0, 3, 1};
  m.forward(mae::images(x.data(), 3, 3, 8, 8), labels, false);
  m.forward(mae::images(x.data() + 3 * kChw, 2, 3, 8, 8), nullptr, false);  // two other images, no labels
  REQUIRE(m.probabilities().rows() == 2);
  const Eigen::MatrixXf without_labels = m.probabilities();
  for (Index i = 0; i < 2; ++i) {
    const Eigen::RowVectorXd z = m.logits().row(i).cast<double>();
    const double norm = (z.array() - z.maxCoeff()).exp().sum();
    for (Index k = 0; k < 4; ++k)
      CHECK(without_labels(i, k) == doctest::Approx(std::exp(z(k) - z.maxCoeff()) / norm).epsilon(1e-6));
  }
  // the same numbers as a forward with labels gives
  m.forward(mae::images(x.data() + 3 * kChw, 2, 3, 8, 8), labels, false);
  CHECK(Eigen::MatrixXf(m.probabilities()) == without_labels);
}

TEST_CASE("evaluate: the report of the logits, the cross-entropy without smoothing, in any batch size") {
  const Images ds(7, 3, 2);
  Vit m(classifier_options(3, false));
  spread_head(m, 4);
  std::vector<int> labels;
  for (Index i = 0; i < ds.size(); ++i) labels.push_back(ds.label(i));
  const mae::ClassificationReport r = mae::evaluate(m, ds.size(), labels.data(), as_is(ds), /*batch=*/3);
  // the same by hand, one forward of all 7 images
  std::vector<float> x(static_cast<std::size_t>(ds.size() * kChw));
  for (Index i = 0; i < ds.size(); ++i) ds.load(i, x.data() + i * kChw);
  m.forward(mae::images(x.data(), ds.size(), 3, 8, 8), nullptr, false);
  std::vector<int> pred(static_cast<std::size_t>(ds.size()));
  m.predictions(pred.data());
  Index correct = 0;
  double loss = 0;
  std::vector<Index> confusion(9, 0);
  for (Index i = 0; i < ds.size(); ++i) {
    correct += pred[i] == labels[i];
    ++confusion[labels[i] * 3 + pred[i]];
    loss -= std::log(static_cast<double>(m.probabilities()(i, labels[i])));
  }
  CHECK(r.count() == 7);
  CHECK(r.top1() == doctest::Approx(static_cast<double>(correct) / 7));
  CHECK(r.top5() == 1.0);  // 3 classes
  CHECK(r.mean_loss() == doctest::Approx(loss / 7).epsilon(1e-5));
  for (Index t = 0; t < 3; ++t)
    for (Index p = 0; p < 3; ++p) CHECK(r.confusion(t, p) == confusion[t * 3 + p]);
  // a label the classifier does not have is refused, naming the image
  labels[5] = 3;
  CHECK_THROWS_WITH_AS(mae::evaluate(m, ds.size(), labels.data(), as_is(ds)), doctest::Contains("image 5"), mae::Error);
}

TEST_CASE("predict: the k most probable classes of each image, in order, with their probabilities") {
  const Images ds(5, 1, 3);
  Vit m(classifier_options(6, true));
  spread_head(m, 8);
  const auto top = mae::predict(m, ds.size(), as_is(ds), /*k=*/3, /*batch=*/2);
  REQUIRE(top.size() == 5);
  std::vector<float> x(static_cast<std::size_t>(ds.size() * kChw));
  for (Index i = 0; i < ds.size(); ++i) ds.load(i, x.data() + i * kChw);
  m.forward(mae::images(x.data(), ds.size(), 3, 8, 8), nullptr, false);
  for (Index i = 0; i < 5; ++i) {
    REQUIRE(top[i].size() == 3);
    std::vector<float> p(m.probabilities().row(i).data(), m.probabilities().row(i).data() + 6);
    std::vector<float> sorted = p;
    std::sort(sorted.rbegin(), sorted.rend());
    for (Index j = 0; j < 3; ++j) {
      CHECK(top[i][j].probability == doctest::Approx(sorted[j]).epsilon(1e-6));
      CHECK(p[top[i][j].index] == doctest::Approx(top[i][j].probability).epsilon(1e-6));
    }
  }
  // more than the classes: all of them; ties: the lower class first
  CHECK(mae::predict(m, 1, as_is(ds), 10)[0].size() == 6);
  Vit flat(classifier_options(4, true));
  mae::zero(flat.params().head.weight, 4 * kD);  // every logit equal
  const auto tied = mae::predict(flat, 1, as_is(ds), 4);
  for (Index j = 0; j < 4; ++j) {
    CHECK(tied[0][j].index == j);
    CHECK(tied[0][j].probability == doctest::Approx(0.25));
  }
}

TEST_CASE("FeatureExtractor: the head's input, a block's pooled tokens, every token; a classifier's own pooling") {
  using Pool = mae::FeatureOptions::Pool;
  const Images ds(3, 1, 6);
  const fs::path dir = mae_test::scratch_dir("inference_features");
  // an MAE checkpoint: the encoder
  mae::MaskedAutoencoder<Cfg> mae_model(typename mae::MaskedAutoencoder<Cfg>::Options{false, 11});
  const std::string mae_path = (dir / "mae.safetensors").string();
  mae_model.save(mae_path);

  std::vector<float> x(static_cast<std::size_t>(ds.size() * kChw));
  for (Index i = 0; i < ds.size(); ++i) ds.load(i, x.data() + i * kChw);
  for (const bool mean : {false, true}) {
    CAPTURE(mean);
    // the reference: a classifier with that pooling and the MAE's encoder
    Vit ref(classifier_options(1, mean));
    ref.load_encoder(mae_path);
    ref.forward(mae::images(x.data(), 3, 3, 8, 8), nullptr, false);

    mae::FeatureExtractor<Cfg> head_input(mae_path, {mean ? Pool::mean : Pool::cls, 0});
    CHECK(head_input.size() == kD);
    const std::vector<float> f = head_input.encode(3, as_is(ds), /*batch=*/2);
    REQUIRE(f.size() == static_cast<std::size_t>(3 * kD));
    for (Index i = 0; i < 3 * kD; ++i) CHECK(f[i] == ref.features().data()[i]);
    CHECK(head_input.description() ==
          std::string(mean ? "mean of patch tokens + fc_norm" : "cls token + norm") + ", encoder " + mae_path);

    // block 1, pooled without a norm
    mae::FeatureExtractor<Cfg> block1(mae_path, {mean ? Pool::mean : Pool::cls, 1});
    const std::vector<float> b = block1.encode(3, as_is(ds));
    const auto x1 = ref.block_output(1);  // (3*T, D)
    for (Index n = 0; n < 3; ++n)
      for (Index d = 0; d < kD; ++d) {
        double want = x1(n * kT, d);
        if (mean) {
          want = 0;
          for (Index t = 1; t < kT; ++t) want += x1(n * kT + t, d);
          want /= kT - 1;
        }
        CHECK(b[n * kD + d] == doctest::Approx(want).epsilon(1e-6));
      }
  }
  // every token of the last block (and of block 1), cls first
  Vit ref(classifier_options(1, false));
  ref.load_encoder(mae_path);
  ref.forward(mae::images(x.data(), 3, 3, 8, 8), nullptr, false);
  for (const Index block : {Index{0}, Index{1}}) {
    mae::FeatureExtractor<Cfg> tokens(mae_path, {Pool::tokens, block});
    CHECK(tokens.size() == kT * kD);
    const std::vector<float> t = tokens.encode(3, as_is(ds), 2);
    const auto xb = ref.block_output(block == 0 ? Vit::kDepth : block);
    for (Index i = 0; i < 3 * kT * kD; ++i) CHECK(t[i] == xb.data()[i]);
  }
  // a fine-tuned classifier keeps the pooling it was trained with, whatever is asked
  Vit clf(classifier_options(5, true));
  spread_head(clf, 2);
  const std::string clf_path = (dir / "classifier.safetensors").string();
  clf.save(clf_path);
  mae::FeatureExtractor<Cfg> own(clf_path, {Pool::cls, 0});
  CHECK(own.options().pool == Pool::mean);
  clf.forward(mae::images(x.data(), 3, 3, 8, 8), nullptr, false);
  const std::vector<float> fc = own.encode(3, as_is(ds));
  for (Index i = 0; i < 3 * kD; ++i) CHECK(fc[i] == clf.features().data()[i]);
  // no block 3 in a 2-block encoder
  CHECK_THROWS_WITH_AS(mae::FeatureExtractor<Cfg>(mae_path, {Pool::cls, 3}), doctest::Contains("1..2"), mae::Error);
}

TEST_CASE("load_classifier: a fine-tuned classifier's classes and pooling from its file; an MAE refused by name") {
  const fs::path dir = mae_test::scratch_dir("inference_load");
  Vit clf(classifier_options(5, false));
  spread_head(clf, 1);
  const std::string path = (dir / "classifier.safetensors").string();
  clf.save(path);
  const auto loaded = mae::load_classifier<Cfg>(path);
  CHECK(loaded.model->num_classes() == 5);
  CHECK(!loaded.model->options().global_pool);
  CHECK(loaded.info.class_names == std::vector<std::string>{"0", "1", "2", "3", "4"});  // none saved: indices
  CHECK(loaded.metadata.at(mae::keys::classifier) == clf.name());
  CHECK(loaded.model->parameters().size() == clf.parameters().size());
  for (Index i = 0; i < clf.parameters().size(); ++i)
    CHECK(loaded.model->parameters().data()[i] == clf.parameters().data()[i]);
  mae::MaskedAutoencoder<Cfg> m;
  const std::string mae_path = (dir / "mae.safetensors").string();
  m.save(mae_path);
  CHECK_THROWS_WITH_AS(mae::load_classifier<Cfg>(mae_path),
                       doctest::Contains((mae_path + ": not a classifier").c_str()), mae::Error);
}

TEST_CASE("CSV reports: per class, predictions, fields quoted as RFC 4180") {
  CHECK(mae::csv_field("plain") == "plain");
  CHECK(mae::csv_field("a,b") == "\"a,b\"");
  CHECK(mae::csv_field("say \"hi\"") == "\"say \"\"hi\"\"\"");
  CHECK(mae::csv_field("two\nlines") == "\"two\nlines\"");
  mae::ClassificationReport r(2);
  const float a[2] = {1, 0}, b[2] = {0, 1};
  r.add(a, 0), r.add(b, 0), r.add(b, 1);
  CHECK(mae::per_class_csv(r, {"cat", "dog, big"}) ==
        "class,images,accuracy\ncat,2,0.500000\n\"dog, big\",1,1.000000\n");
  CHECK_THROWS_AS(mae::per_class_csv(r, {"cat"}), mae::Error);
  const std::vector<std::vector<mae::RankedClass>> ranked{{{1, 0.75}, {0, 0.25}}, {{0, 0.5}, {1, 0.5}}};
  CHECK(mae::predictions_csv({"x.png", "y,z.png"}, ranked, {"cat", "dog"}) ==
        "path,label1,prob1,label2,prob2\nx.png,dog,0.750000,cat,0.250000\n\"y,z.png\",cat,0.500000,dog,0.500000\n");
}

TEST_CASE("classification report: top-1, top-5, per class, confusion, mean loss") {
  mae::ClassificationReport r(6);
  const float a[6] = {0.9f, 0.1f, 0, 0, 0, 0};              // predicts 0
  const float b[6] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};  // predicts 5; class 0 ranks 6th
  const float c[6] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};  // class 1 ranks 5th
  r.add(a, 0, 1.0), r.add(b, 0, 2.0), r.add(c, 1, 3.0);
  CHECK(r.count() == 3);
  CHECK(r.top1() == doctest::Approx(1.0 / 3));
  CHECK(r.top5() == doctest::Approx(2.0 / 3));
  CHECK(r.mean_loss() == doctest::Approx(2.0));
  CHECK(r.confusion(0, 0) == 1);
  CHECK(r.confusion(0, 5) == 1);
  CHECK(r.confusion(1, 5) == 1);
  CHECK(r.class_count(0) == 2);
  CHECK(r.class_accuracy(0) == 0.5);
  CHECK(r.class_accuracy(1) == 0.0);
  CHECK(std::isnan(r.class_accuracy(2)));
  const float tie[6] = {0.5f, 0.5f, 0, 0, 0, 0};  // a tie goes to the first class
  r.add(tie, 1);
  CHECK(r.confusion(1, 0) == 1);
  CHECK_THROWS_AS(r.add(a, 6), mae::Error);
}

TEST_CASE("weighted k-NN: the neighbours' labels vote with exp(cosine / T)") {
  // 2-D features: class 0 along +x, class 1 along +y, class 2 along -x (scaled: cosine ignores length)
  const std::vector<float> train{1, 0.1f, 2, -0.1f, 0.1f, 1, -0.1f, 3, -1, 0.05f, -2, 0};
  const std::vector<int> labels{0, 0, 1, 1, 2, 2};
  const std::vector<float> q{5, 1, 0.2f, 1, -1, -0.1f, 1, 1.05f};
  const std::vector<int> ql{0, 1, 2, 1};
  auto r = mae::knn_classify(train.data(), labels.data(), 6, q.data(), ql.data(), 4, 2, 3, /*k=*/2, 0.07);
  CHECK(r.top1() == 1.0);
  // k = all: at a low temperature the most similar neighbours still decide
  r = mae::knn_classify(train.data(), labels.data(), 6, q.data(), ql.data(), 4, 2, 3, 6, 0.07);
  CHECK(r.confusion(0, 0) == 1);
  // the query (1, 1.05) sits between +x and +y: k = 1 takes the single nearest (class 1)
  r = mae::knn_classify(train.data(), labels.data(), 6, q.data() + 6, ql.data() + 3, 1, 2, 3, 1, 0.07);
  CHECK(r.confusion(1, 1) == 1);
  CHECK_THROWS_AS(mae::knn_classify(train.data(), labels.data(), 6, q.data(), ql.data(), 4, 2, 3, 0), mae::Error);
}
