// mae/core/params.hpp — named tensors over one contiguous allocation.
//
// A TensorStore holds every tensor of a model in one buffer, in registration order, with a
// table of (state-dict name, shape, offset). The model's parameter struct of raw pointers
// (LinearParams, BlockParams, ...) is bound into it, and so is a second store of the same
// layout for the gradients: the optimizer is then one flat loop.
#ifndef MAE_CORE_PARAMS_HPP
#define MAE_CORE_PARAMS_HPP

#include "common.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

namespace mae {

using Shape = std::vector<std::int64_t>;

inline std::string shape_string(const Shape& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

inline std::int64_t shape_numel(const Shape& s) {
  std::int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

struct TensorInfo {
  std::string name;
  Shape shape;
  Index offset = 0;  // into the store
  Index size = 0;    // elements
  // The reference's AdamW grouping: no weight decay for 1-D tensors and biases
  // (cls_token and mask_token, 1x1xD, are decayed).
  bool weight_decay() const {
    const bool is_bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    return shape.size() > 1 && !is_bias;
  }
};

// What a model's backward reports as it goes, when given one: ready(from) says that the
// gradients [from, size) of the store are final for this backward. Backward runs the layers in
// the reverse of their registration order, so the final part grows from the end of the store
// down; a data-parallel trainer starts averaging it while the rest of backward runs (the
// bucket hooks of DistributedDataParallel).
using GradientsReady = std::function<void(Index from)>;

template <class S>
class TensorStore {
 public:
  TensorStore() = default;

  // Register every tensor of a parameter struct through its visitor, allocate, bind.
  // visit(f) must call f(name, shape, S*& pointer) for each tensor.
  template <class Visit>
  void build(Visit&& visit) {
    infos_.clear();
    index_.clear();
    Index offset = 0;
    visit([&](const std::string& name, const Shape& shape, S*&) {
      TensorInfo t{name, shape, offset, static_cast<Index>(shape_numel(shape))};
      index_[name] = infos_.size();
      infos_.push_back(std::move(t));
      offset += infos_.back().size;
    });
    data_.assign(static_cast<std::size_t>(offset), S(0));
    bind(visit);
  }

  // Point a parameter struct (of the same layout) at this store's tensors.
  template <class Visit>
  void bind(Visit&& visit) {
    visit([&](const std::string& name, const Shape&, S*& ptr) { ptr = data_.data() + find(name).offset; });
  }

  S* data() { return data_.data(); }
  const S* data() const { return data_.data(); }
  Index size() const { return static_cast<Index>(data_.size()); }
  const std::vector<TensorInfo>& tensors() const { return infos_; }

  const TensorInfo* try_find(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &infos_[it->second];
  }
  const TensorInfo& find(const std::string& name) const {
    const TensorInfo* t = try_find(name);
    if (!t) throw Error("no tensor named '" + name + "'");
    return *t;
  }
  S* ptr(const std::string& name) { return data_.data() + find(name).offset; }
  Index offset_of(const S* p) const { return static_cast<Index>(p - data_.data()); }  // p inside the store
  const S* ptr(const std::string& name) const { return data_.data() + find(name).offset; }
  void set_zero() { zero(data_.data(), size()); }

 private:
  std::vector<S> data_;
  std::vector<TensorInfo> infos_;
  std::unordered_map<std::string, std::size_t> index_;
};

}  // namespace mae

#endif  // MAE_CORE_PARAMS_HPP
