// mae/inference/metrics.hpp — what a classifier or a feature extractor is worth on labelled images:
// top-1 / top-5 accuracy, per-class accuracy and the confusion matrix of class probabilities,
// and the weighted k-nearest-neighbour vote on features (DINO's eval_knn.py, used by
// solo-learn too) for checking a pretraining checkpoint without training a head.
#ifndef MAE_INFERENCE_METRICS_HPP
#define MAE_INFERENCE_METRICS_HPP

#include "../core/common.hpp"

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace mae {

class ClassificationReport {
 public:
  explicit ClassificationReport(Index classes) : K_(classes), confusion_(static_cast<std::size_t>(classes * classes)) {
    if (classes < 1) throw Error("a classification report needs at least one class");
  }

  // One image: its class probabilities (K) or scores (larger: more likely), and its label.
  template <class S>
  void add(const S* scores, int label, double loss = 0) {
    if (label < 0 || label >= K_)
      throw Error("label " + std::to_string(label) + " outside 0.." + std::to_string(K_ - 1));
    const Index pred = static_cast<Index>(std::max_element(scores, scores + K_) - scores);  // first on ties
    Index higher = 0;  // classes scored above the true one: top-k holds if fewer than k
    for (Index k = 0; k < K_; ++k) higher += scores[k] > scores[label] || (scores[k] == scores[label] && k < label);
    ++confusion_[static_cast<std::size_t>(label * K_ + pred)];
    top5_ += higher < 5;
    loss_ += loss;
    ++count_;
  }

  Index classes() const { return K_; }
  Index count() const { return count_; }
  // confusion(true, predicted): images of class `true` predicted as `predicted`
  Index confusion(Index truth, Index pred) const { return confusion_[static_cast<std::size_t>(truth * K_ + pred)]; }
  double top1() const {
    Index c = 0;
    for (Index k = 0; k < K_; ++k) c += confusion(k, k);
    return count_ ? static_cast<double>(c) / static_cast<double>(count_) : 0.0;
  }
  double top5() const { return count_ ? static_cast<double>(top5_) / static_cast<double>(count_) : 0.0; }
  double mean_loss() const { return count_ ? loss_ / static_cast<double>(count_) : 0.0; }
  Index class_count(Index k) const {
    Index n = 0;
    for (Index p = 0; p < K_; ++p) n += confusion(k, p);
    return n;
  }
  // Accuracy on the images of class k (NaN when it has none).
  double class_accuracy(Index k) const {
    const Index n = class_count(k);
    return n ? static_cast<double>(confusion(k, k)) / static_cast<double>(n) : std::nan("");
  }

 private:
  Index K_;
  std::vector<Index> confusion_;
  Index top5_ = 0, count_ = 0;
  double loss_ = 0;
};

// Weighted k-NN (DINO): features L2-normalized, the k training features most similar
// (cosine) to each query vote for their labels with weight exp(similarity / temperature).
// train (n, F) row-major, queries (m, F); returns the report of the vote scores.
inline ClassificationReport knn_classify(const float* train, const int* train_labels, Index n, const float* queries,
                                         const int* query_labels, Index m, Index F, Index classes, Index k = 20,
                                         double temperature = 0.07) {
  if (n < 1 || m < 1 || F < 1) throw Error("k-NN needs training and query features");
  if (k < 1 || temperature <= 0) throw Error("k-NN needs k >= 1 and a positive temperature");
  using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const auto normalized = [F](const float* x, Index rows) {
    Mat a = Eigen::Map<const Mat>(x, rows, F);
    for (Index i = 0; i < rows; ++i) a.row(i) /= std::max(a.row(i).norm(), 1e-12f);  // F.normalize's eps
    return a;
  };
  const Mat tr = normalized(train, n);
  const Index kk = std::min(k, n), chunk = 256;
  ClassificationReport report(classes);
  std::vector<double> votes(static_cast<std::size_t>(classes));
  std::vector<Index> order(static_cast<std::size_t>(n));
  for (Index s = 0; s < m; s += chunk) {
    const Index B = std::min(chunk, m - s);
    const Mat q = normalized(queries + s * F, B);
    const Mat sim = q * tr.transpose();  // (B, n)
    for (Index i = 0; i < B; ++i) {
      std::iota(order.begin(), order.end(), Index{0});
      const float* row = sim.data() + i * n;
      std::partial_sort(order.begin(), order.begin() + kk, order.end(),
                        [&](Index a, Index b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
      std::fill(votes.begin(), votes.end(), 0.0);
      for (Index j = 0; j < kk; ++j) {
        const int y = train_labels[order[j]];
        if (y < 0 || y >= classes) throw Error("k-NN: training label " + std::to_string(y) + " out of range");
        votes[static_cast<std::size_t>(y)] += std::exp(static_cast<double>(row[order[j]]) / temperature);
      }
      report.add(votes.data(), query_labels[s + i]);
    }
  }
  return report;
}

}  // namespace mae

#endif  // MAE_INFERENCE_METRICS_HPP
