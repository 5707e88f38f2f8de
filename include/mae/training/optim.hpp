// mae/training/optim.hpp — AdamW and the learning-rate schedule of the MAE pretraining recipe.
//
// AdamW as torch.optim.AdamW (decoupled weight decay), with the parameter groups of
// timm's add_weight_decay: no decay for 1-D tensors and biases (TensorInfo::weight_decay),
// or any grouping given per tensor (fine-tuning's layer-wise lr decay, finetune.hpp).
// LARS as util/lars.py (the linear probe's optimizer).
// The schedule is util/lr_sched.py: per-iteration linear warmup, then half-cycle cosine.
#ifndef MAE_TRAINING_OPTIM_HPP
#define MAE_TRAINING_OPTIM_HPP

#include "../core/common.hpp"
#include "../core/params.hpp"
#include "../io/checkpoint.hpp"
#include "../io/safetensors.hpp"
#include "../kernels/elementwise.hpp"

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mae {

// How one tensor is optimized: with weight decay or not, and its lr multiplier.
struct ParamGroup {
  bool weight_decay = true;
  double lr_scale = 1.0;
};
using ParamGrouping = std::function<ParamGroup(const TensorInfo&)>;

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.95;  // the MAE recipe (PyTorch's default is 0.999)
  double eps = 1e-8;
  double weight_decay = 0.05;
};

template <class S>
class AdamW {
 public:
  AdamW() = default;
  AdamW(const TensorStore<S>& params, AdamWOptions opt, const ParamGrouping& grouping = {}) {
    reset(params, opt, grouping);
  }

  // grouping: per tensor; by default the pretraining groups (TensorInfo::weight_decay, lr x1).
  void reset(const TensorStore<S>& params, AdamWOptions opt, const ParamGrouping& grouping = {}) {
    opt_ = opt;
    step_ = 0;
    m_.assign(static_cast<std::size_t>(params.size()), S(0));
    v_.assign(static_cast<std::size_t>(params.size()), S(0));
    groups_.clear();
    for (const auto& t : params.tensors()) {
      const ParamGroup g = grouping ? grouping(t) : ParamGroup{t.weight_decay(), 1.0};
      groups_.push_back({t.offset, t.size, g.weight_decay, g.lr_scale});
    }
  }

  // One update of every parameter with learning rate lr * lr_scale (torch.optim.AdamW.step):
  //   p *= 1 - lr * wd                      (decayed tensors only)
  //   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
  //   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
  void step(TensorStore<S>& params, const TensorStore<S>& grads, double lr) {
    using namespace kernels;
    if (params.size() != static_cast<Index>(m_.size()) || grads.size() != params.size())
      throw Error("AdamW: parameter layout differs from the one the optimizer was built for");
    ++step_;
    const double bc1 = 1.0 - std::pow(opt_.beta1, static_cast<double>(step_));
    const double bc2 = 1.0 - std::pow(opt_.beta2, static_cast<double>(step_));
    const S b1 = static_cast<S>(opt_.beta1), b2 = static_cast<S>(opt_.beta2);
    const S one_b1 = static_cast<S>(1.0 - opt_.beta1), one_b2 = static_cast<S>(1.0 - opt_.beta2);
    const S bc2_sqrt = static_cast<S>(std::sqrt(bc2)), eps = static_cast<S>(opt_.eps);
    S* p = params.data();
    const S* g = grads.data();
    S* m = m_.data();
    S* v = v_.data();
    // One parallel region; each group's blocks of 16 are split between the threads without a
    // barrier between groups (every value is updated independently of the others).
#pragma omp parallel
    for (const auto& t : groups_) {
      const double lr_t = lr * t.lr_scale;
      const S step_size = static_cast<S>(lr_t / bc1);
      const S keep = t.decay ? static_cast<S>(1.0 - lr_t * opt_.weight_decay) : S(1);
      const Index blocks = (t.size + kBlock16 - 1) / kBlock16;
#pragma omp for schedule(static) nowait
      for (Index b = 0; b < blocks; ++b) {
        const Index i = t.offset + b * kBlock16, n = std::min(kBlock16, t.offset + t.size - i);
        const Block16<S> gi = load16(g + i, n);
        const Block16<S> mi = load16(m + i, n) * b1 + one_b1 * gi;
        const Block16<S> vi = load16(v + i, n) * b2 + one_b2 * gi * gi;
        store16(m + i, mi, n);
        store16(v + i, vi, n);
        store16<S>(p + i, load16(p + i, n) * keep - step_size * (mi / (vi.sqrt() / bc2_sqrt + eps)), n);
      }
    }
  }

  std::int64_t steps() const { return step_; }
  const std::vector<S>& exp_avg() const { return m_; }
  const std::vector<S>& exp_avg_sq() const { return v_; }
  const AdamWOptions& options() const { return opt_; }

  // --- its state, saved and loaded by the optimizer itself ----------------------------------
  // The moments as tensors named after the parameters (optimizer.exp_avg.<name>,
  // optimizer.exp_avg_sq.<name>) and the step count (keys::optimizer_steps). The tensors are
  // views of this optimizer's buffers: write them before it steps again.
  void save_state(const TensorStore<S>& params, std::vector<safetensors::TensorOut>& tensors, Metadata& meta) const {
    for (const auto& info : params.tensors()) {
      tensors.push_back(safetensors::TensorOut::of<S>(kExpAvg + info.name, info.shape, m_.data() + info.offset));
      tensors.push_back(safetensors::TensorOut::of<S>(kExpAvgSq + info.name, info.shape, v_.data() + info.offset));
    }
    meta[keys::optimizer_steps] = std::to_string(step_);
  }
  // The names save_state writes (a strict load of the weights from a checkpoint lets them by).
  static std::vector<std::string> state_names(const TensorStore<S>& params) {
    std::vector<std::string> names;
    for (const auto& info : params.tensors())
      names.push_back(kExpAvg + info.name), names.push_back(kExpAvgSq + info.name);
    return names;
  }
  // Reading is apart from loading, so that a checkpoint is checked whole (each tensor named in
  // errors) before anything changes: load_state(read_state(f, params)) cannot fail halfway.
  struct State {
    std::vector<S> m, v;
    std::int64_t steps = 0;
  };
  static State read_state(const safetensors::File& f, const TensorStore<S>& params) {
    if (!f.metadata().count(keys::optimizer_steps))
      f.fail(std::string("no optimizer state (no '") + keys::optimizer_steps + "' in its metadata)");
    State s;
    s.m.resize(static_cast<std::size_t>(params.size()));
    s.v.resize(s.m.size());
    for (const auto& info : params.tensors()) {
      f.read(kExpAvg + info.name, info.shape, s.m.data() + info.offset);
      f.read(kExpAvgSq + info.name, info.shape, s.v.data() + info.offset);
    }
    s.steps = std::stoll(f.metadata().at(keys::optimizer_steps));
    return s;
  }
  void load_state(State&& s) {
    if (s.m.size() != m_.size() || s.v.size() != v_.size())
      throw Error("AdamW: the state read is for another parameter layout");
    m_ = std::move(s.m);
    v_ = std::move(s.v);
    step_ = s.steps;
  }

 private:
  static inline const std::string kExpAvg = "optimizer.exp_avg.", kExpAvgSq = "optimizer.exp_avg_sq.";
  struct Group {
    Index offset, size;
    bool decay;
    double lr_scale;
  };
  AdamWOptions opt_;
  std::int64_t step_ = 0;
  std::vector<S> m_, v_;
  std::vector<Group> groups_;
};

// LARS (util/lars.py), SGD with momentum whose update of each matrix (ndim > 1) is scaled by
// the trust ratio trust * |p| / |g + wd p|; vectors (biases) get plain momentum SGD:
//   d = g (+ wd p);  d *= q (matrices);  mu = momentum mu + d;  p -= lr mu
struct LarsOptions {
  double weight_decay = 0;
  double momentum = 0.9;
  double trust_coefficient = 0.001;
};

template <class S>
class Lars {
 public:
  Lars() = default;
  Lars(const TensorStore<S>& params, LarsOptions opt) : opt_(opt), mu_(static_cast<std::size_t>(params.size()), S(0)) {}

  void step(TensorStore<S>& params, const TensorStore<S>& grads, double lr) {
    using namespace kernels;
    if (params.size() != static_cast<Index>(mu_.size()) || grads.size() != params.size())
      throw Error("LARS: parameter layout differs from the one the optimizer was built for");
    for (const auto& t : params.tensors()) {
      S* p = params.data() + t.offset;
      const S* g = grads.data() + t.offset;
      S* mu = mu_.data() + t.offset;
      const bool matrix = t.shape.size() > 1;
      const double wd = matrix ? opt_.weight_decay : 0.0;
      double q = 1.0;
      if (matrix) {
        double pn = 0, dn = 0;
        for (Index i = 0; i < t.size; ++i) {
          const double d = static_cast<double>(g[i]) + wd * static_cast<double>(p[i]);
          pn += static_cast<double>(p[i]) * static_cast<double>(p[i]);
          dn += d * d;
        }
        pn = std::sqrt(pn), dn = std::sqrt(dn);
        if (pn > 0 && dn > 0) q = opt_.trust_coefficient * pn / dn;
      }
      for (Index i = 0; i < t.size; ++i) {
        const double d = (static_cast<double>(g[i]) + wd * static_cast<double>(p[i])) * q;
        mu[i] = static_cast<S>(opt_.momentum * static_cast<double>(mu[i]) + d);
        p[i] = static_cast<S>(static_cast<double>(p[i]) - lr * static_cast<double>(mu[i]));
      }
    }
  }

 private:
  LarsOptions opt_;
  std::vector<S> mu_;
};

// torch.nn.utils.clip_grad_norm_(parameters, max_norm) as the reference's loss scaler calls
// it (--clip_grad): the L2 norm of all gradients together; if above max_norm, every gradient is
// scaled by max_norm / (norm + 1e-6). One summation order (sequential, in double): the same
// bits for any thread count. Returns the norm before clipping.
template <class S>
inline double clip_grad_norm(S* grads, Index n, double max_norm) {
  double sq = 0;
  for (Index i = 0; i < n; ++i) sq += static_cast<double>(grads[i]) * static_cast<double>(grads[i]);
  const double norm = std::sqrt(sq);
  if (!std::isfinite(norm)) throw Error("gradient norm is " + std::to_string(norm) + " (clip_grad)");
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1)
    for (Index i = 0; i < n; ++i) grads[i] = static_cast<S>(static_cast<double>(grads[i]) * coef);
  return norm;
}

struct LrSchedule {
  double base_lr = 1.5e-4;  // blr * effective batch / 256 (scaled() computes it)
  double min_lr = 0.0;
  double warmup_epochs = 40;
  double epochs = 400;

  // lr = blr * effective_batch / 256 (main_pretrain.py), with blr 1.5e-4 by default
  static double scaled(double blr, Index effective_batch) { return blr * static_cast<double>(effective_batch) / 256.0; }

  // Refuses a schedule that means nothing: a rate that is not a positive finite number, a
  // final rate above the peak (the cosine would rise), a warmup as long as the run (the rate
  // would never reach its peak).
  void check() const {
    const auto text = [](double v) {
      char b[32];
      std::snprintf(b, sizeof b, "%g", v);
      return std::string(b);
    };
    if (!std::isfinite(base_lr) || base_lr <= 0)
      throw Error("the learning rate must be a positive finite number, not " + text(base_lr));
    if (!std::isfinite(min_lr) || min_lr < 0 || min_lr > base_lr)
      throw Error("the final learning rate (min_lr " + text(min_lr) + ") must be between 0 and the peak rate " +
                  text(base_lr) + ": the cosine schedule would rise");
    if (!std::isfinite(epochs) || epochs <= 0) throw Error("the run must last a positive number of epochs");
    if (!std::isfinite(warmup_epochs) || warmup_epochs < 0 || warmup_epochs >= epochs)
      throw Error("the warmup (" + text(warmup_epochs) + " epochs) must be shorter than the run (" + text(epochs) +
                  " epochs): the learning rate would never reach its peak");
  }

  // util/lr_sched.py at fractional epoch e = epoch + step / steps_per_epoch
  double at(double e) const {
    if (e < warmup_epochs) return base_lr * e / warmup_epochs;
    const double pi = 3.14159265358979323846;
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + std::cos(pi * (e - warmup_epochs) / (epochs - warmup_epochs)));
  }
};

}  // namespace mae

#endif  // MAE_TRAINING_OPTIM_HPP
