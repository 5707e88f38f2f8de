// mae/training/linear_probe.hpp — linear probing (main_linprobe.py): a frozen encoder's features
// through BatchNorm1d(F, affine=False, eps=1e-6) and a linear layer, trained with LARS and
// plain cross-entropy.
//
//   train:  xhat = (x - mean_batch) / sqrt(var_batch + eps)           (B, F)  biased var
//           running_mean = 0.9 running_mean + 0.1 mean_batch
//           running_var  = 0.9 running_var  + 0.1 var_batch * B / (B - 1)
//   eval:   xhat = (x - running_mean) / sqrt(running_var + eps)
//           logits = xhat W^T + b                                     (B, classes)
//
// The encoder is frozen and the BatchNorm has no parameters, so the only gradients are the
// linear layer's: nothing flows back into the features. Features of a frozen encoder on
// images without augmentation are the same every epoch, so they are computed once
// (inference/features.hpp's FeatureExtractor::encode; the reference augments with
// RandomResizedCrop + flip and re-encodes every epoch).
#ifndef MAE_TRAINING_LINEAR_PROBE_HPP
#define MAE_TRAINING_LINEAR_PROBE_HPP

#include "../core/common.hpp"
#include "../core/params.hpp"
#include "../core/rng.hpp"
#include "../io/checkpoint.hpp"
#include "../io/safetensors.hpp"
#include "../layers/cross_entropy.hpp"
#include "../layers/linear.hpp"
#include "optim.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <numeric>
#include <string>
#include <vector>

namespace mae {

inline constexpr double kProbeBatchNormEps = 1e-6;

// A probe's BatchNorm folded into its linear layer: the evaluation forward
//   logits = ((x - mean) / sqrt(var + eps)) W^T + b  =  x W'^T + b'
// with W'[k, f] = W[k, f] / sqrt(var_f + eps) and b'_k = b_k - sum_f W'[k, f] mean_f: one Linear
// (K, F), which a ViT's head can hold (export). In double.
struct FoldedProbe {
  Index classes = 0, features = 0;
  std::vector<double> weight, bias;  // (K, F), (K)
};
template <class S>
FoldedProbe fold_batch_norm(const S* weight, const S* bias, const S* mean, const S* var, Index K, Index F) {
  FoldedProbe p{K, F, std::vector<double>(static_cast<std::size_t>(K * F)),
                std::vector<double>(static_cast<std::size_t>(K))};
  for (Index k = 0; k < K; ++k) {
    double b = static_cast<double>(bias[k]);
    for (Index f = 0; f < F; ++f) {
      const double w =
          static_cast<double>(weight[k * F + f]) / std::sqrt(static_cast<double>(var[f]) + kProbeBatchNormEps);
      p.weight[static_cast<std::size_t>(k * F + f)] = w;
      b -= w * static_cast<double>(mean[f]);
    }
    p.bias[static_cast<std::size_t>(k)] = b;
  }
  return p;
}

// The folded head of a probe file (LinearProbe::save's: head.0.running_mean, head.0.running_var,
// head.1.weight, head.1.bias), refused by name if a tensor is missing or misshapen.
inline FoldedProbe read_folded_probe(const safetensors::File& f) {
  for (const char* t : {"head.0.running_mean", "head.0.running_var", "head.1.weight", "head.1.bias"})
    if (!f.contains(t)) f.fail(std::string("tensor '") + t + "' is missing (not a linear probe of mae probe?)");
  Shape ws;
  const std::vector<double> w = f.read<double>("head.1.weight", &ws);
  if (ws.size() != 2) f.fail("tensor 'head.1.weight' has shape " + shape_string(ws) + ", not (classes, features)");
  const Index K = ws[0], F = ws[1];
  const auto vector_of = [&f](const char* name, Index n) {
    Shape s;
    std::vector<double> v = f.read<double>(name, &s);
    if (s != Shape{n})
      f.fail(std::string("tensor '") + name + "' has shape " + shape_string(s) + ", expected (" + std::to_string(n) +
             ")");
    return v;
  };
  const std::vector<double> b = vector_of("head.1.bias", K), m = vector_of("head.0.running_mean", F),
                            v = vector_of("head.0.running_var", F);
  for (const double x : v)
    if (!(x >= 0) || !std::isfinite(x)) f.fail("tensor 'head.0.running_var' holds a negative or non-finite variance");
  return fold_batch_norm(w.data(), b.data(), m.data(), v.data(), K, F);
}

template <class S = float>
class LinearProbe {
 public:
  // head.1.weight ~ N(0, 0.01) truncated at +-2 (main_linprobe.py), bias 0.
  LinearProbe(Index features, Index classes, std::uint64_t seed = 0) : F_(features), K_(classes) {
    if (features < 1 || classes < 1) throw Error("a linear probe needs at least one feature and one class");
    auto visit = [this](Params& w) {
      return [this, &w](auto&& f) {
        f("head.1.weight", {K_, F_}, w.weight);
        f("head.1.bias", {K_}, w.bias);
      };
    };
    params_.build(visit(w_));
    grads_.build(visit(g_));
    running_mean_.assign(static_cast<std::size_t>(F_), S(0));
    running_var_.assign(static_cast<std::size_t>(F_), S(1));
    Rng r(seed);
    for (Index i = 0; i < K_ * F_; ++i) {
      double v = 0.01 * r.normal();
      while (std::abs(v) > 2.0) v = 0.01 * r.normal();
      w_.weight[i] = static_cast<S>(v);
    }
  }

  Index num_features() const { return F_; }
  Index num_classes() const { return K_; }
  TensorStore<S>& parameters() { return params_; }
  TensorStore<S>& gradients() { return grads_; }
  const std::vector<S>& running_mean() const { return running_mean_; }
  const std::vector<S>& running_var() const { return running_var_; }
  void zero_grad() { grads_.set_zero(); }

  // Training mode on a batch x (B, F): returns the loss and accumulates (+=) dloss * dloss/dW
  // into gradients(); update_stats: move the running statistics (once per real step).
  S forward_backward(const S* x, const int* labels, Index B, bool update_stats = true, S dloss = S(1)) {
    if (B < 2) throw Error("linear probe: BatchNorm needs at least 2 samples per batch");
    ensure(xhat_, B * F_), ensure(logits_, B * K_), ensure(probs_, B * K_), ensure(dlogits_, B * K_);
    // xhat = (x - mean_batch) / sqrt(var_batch + eps)
    for (Index f = 0; f < F_; ++f) {
      double m = 0, v = 0;
      for (Index n = 0; n < B; ++n) m += x[n * F_ + f];
      m /= static_cast<double>(B);
      for (Index n = 0; n < B; ++n) v += (x[n * F_ + f] - m) * (x[n * F_ + f] - m);
      const double var = v / static_cast<double>(B);
      const double rstd = 1.0 / std::sqrt(var + kProbeBatchNormEps);
      for (Index n = 0; n < B; ++n) xhat_[n * F_ + f] = static_cast<S>((x[n * F_ + f] - m) * rstd);
      if (update_stats) {
        running_mean_[f] = static_cast<S>(0.9 * running_mean_[f] + 0.1 * m);
        running_var_[f] = static_cast<S>(0.9 * running_var_[f] + 0.1 * v / static_cast<double>(B - 1));
      }
    }
    if (update_stats) ++batches_tracked_;
    // logits = xhat W^T + b; loss = cross_entropy(logits, labels)
    linear_forward(logits_.data(), xhat_.data(), w_.weight, w_.bias, B, F_, K_);
    const S loss = cross_entropy_forward(probs_.data(), logits_.data(), labels, B, K_, 0.0);
    zero(dlogits_.data(), B * K_);
    cross_entropy_backward(dlogits_.data(), probs_.data(), labels, B, K_, 0.0, dloss);
    // forward: logits = xhat W^T + b   (no gradient into xhat: the features are frozen)
    linear_backward(static_cast<S*>(nullptr), g_.weight, g_.bias, dlogits_.data(), xhat_.data(), w_.weight, B, F_, K_);
    return loss;
  }

  // Evaluation mode: logits (B, K) from x (B, F) with the running statistics.
  void predict(const S* x, Index B, S* logits) {
    ensure(xhat_, B * F_);
    for (Index f = 0; f < F_; ++f) {
      const double rstd = 1.0 / std::sqrt(static_cast<double>(running_var_[f]) + kProbeBatchNormEps);
      for (Index n = 0; n < B; ++n) xhat_[n * F_ + f] = static_cast<S>((x[n * F_ + f] - running_mean_[f]) * rstd);
    }
    linear_forward(logits, xhat_.data(), w_.weight, w_.bias, B, F_, K_);
  }

  // Top-1 accuracy and mean cross-entropy on (count, F) features, in evaluation mode.
  std::pair<double, double> evaluate(const S* x, const int* labels, Index count, Index batch = 1024) {
    std::vector<S> logits(static_cast<std::size_t>(batch * K_)), probs(logits.size());
    Index correct = 0;
    double loss = 0;
    for (Index s = 0; s < count; s += batch) {
      const Index B = std::min(batch, count - s);
      predict(x + s * F_, B, logits.data());
      loss += static_cast<double>(cross_entropy_forward(probs.data(), logits.data(), labels + s, B, K_, 0.0)) * B;
      for (Index n = 0; n < B; ++n) {
        const S* z = logits.data() + n * K_;
        correct += (std::max_element(z, z + K_) - z) == labels[s + n];
      }
    }
    return {static_cast<double>(correct) / static_cast<double>(count), loss / static_cast<double>(count)};
  }

  // The BatchNorm folded into the linear layer (fold_batch_norm): predict's logits as one Linear.
  FoldedProbe folded() const {
    return fold_batch_norm(w_.weight, w_.bias, running_mean_.data(), running_var_.data(), K_, F_);
  }

  // The head under the reference's names: head.0 (BatchNorm1d buffers), head.1 (Linear).
  void save(const std::string& path, std::map<std::string, std::string> meta = {}) const {
    std::vector<safetensors::TensorOut> t;
    t.push_back(safetensors::TensorOut::of<S>("head.0.running_mean", {F_}, running_mean_.data()));
    t.push_back(safetensors::TensorOut::of<S>("head.0.running_var", {F_}, running_var_.data()));
    for (const auto& info : params_.tensors())
      t.push_back(safetensors::TensorOut::of<S>(info.name, info.shape, params_.data() + info.offset));
    meta["format"] = "pt";
    meta[keys::linear_probe_batches_tracked] = std::to_string(batches_tracked_);
    safetensors::save(path, t, meta);
  }

 private:
  struct Params {
    S* weight = nullptr;  // (K, F)
    S* bias = nullptr;    // (K)
  };
  Index F_, K_;
  TensorStore<S> params_, grads_;
  Params w_, g_;
  std::vector<S> running_mean_, running_var_;
  std::int64_t batches_tracked_ = 0;
  std::vector<S> xhat_, logits_, probs_, dlogits_;
};

// The probe's training (main_linprobe.py): LARS, per-iteration warmup + half-cycle cosine,
// batches of a fresh seeded permutation every epoch (drop_last), the test set evaluated after
// every epoch.
struct ProbeOptions {
  int epochs = 90;
  Index batch_size = 4096;
  double blr = 0.1;  // lr = blr * batch_size / 256
  double warmup_epochs = 10;
  double weight_decay = 0;
  std::uint64_t seed = 0;  // data order
};

struct ProbeEpoch {
  int epoch;  // 1-based
  double train_loss, lr, test_accuracy, test_loss;
};

// Trains `probe` on the (n, F) features x with labels y; (nt, F) test features xt, yt.
// on_epoch (may be empty) sees each epoch's result. Returns the last one.
template <class S>
ProbeEpoch fit_linear_probe(LinearProbe<S>& probe, const S* x, const int* y, Index n, const S* xt, const int* yt,
                            Index nt, const ProbeOptions& o,
                            const std::function<void(const ProbeEpoch&)>& on_epoch = {}) {
  const Index F = probe.num_features(), batch = std::min(o.batch_size, n), iters = n / batch;
  if (batch < 2) throw Error("linear probe: BatchNorm needs at least 2 training images per batch");
  Lars<S> lars(probe.parameters(), LarsOptions{o.weight_decay, 0.9, 0.001});
  const LrSchedule sched{LrSchedule::scaled(o.blr, batch), 0.0, o.warmup_epochs, static_cast<double>(o.epochs)};
  sched.check();
  std::vector<S> xb(static_cast<std::size_t>(batch * F));
  std::vector<int> yb(static_cast<std::size_t>(batch));
  std::vector<Index> perm(static_cast<std::size_t>(n));
  ProbeEpoch last{0, 0, 0, 0, 0};
  for (int epoch = 0; epoch < o.epochs; ++epoch) {
    std::iota(perm.begin(), perm.end(), 0);
    Rng r(mix_seed(o.seed, 0x9b0be, static_cast<std::uint64_t>(epoch)));
    for (Index i = n - 1; i > 0; --i) std::swap(perm[i], perm[r.next_u64() % std::uint64_t(i + 1)]);
    double loss_sum = 0, lr = 0;
    for (Index k = 0; k < iters; ++k) {
      lr = sched.at(epoch + static_cast<double>(k) / static_cast<double>(iters));
      for (Index j = 0; j < batch; ++j) {
        const Index idx = perm[k * batch + j];
        std::copy(x + idx * F, x + (idx + 1) * F, xb.begin() + j * F);
        yb[j] = y[idx];
      }
      probe.zero_grad();
      const S loss = probe.forward_backward(xb.data(), yb.data(), batch);
      if (!std::isfinite(static_cast<double>(loss)))
        throw Error("linear probe: non-finite loss in epoch " + std::to_string(epoch + 1));
      lars.step(probe.parameters(), probe.gradients(), lr);
      loss_sum += static_cast<double>(loss);
    }
    const auto test = probe.evaluate(xt, yt, nt);
    last = ProbeEpoch{epoch + 1, loss_sum / static_cast<double>(iters), lr, test.first, test.second};
    if (on_epoch) on_epoch(last);
  }
  return last;
}

}  // namespace mae

#endif  // MAE_TRAINING_LINEAR_PROBE_HPP
