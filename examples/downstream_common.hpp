// Shared by the downstream examples (linear_probe, finetune): Fashion-MNIST splits, the
// encoder to start from, labels, and a timer.
#pragma once

#include <mae/classifier.hpp>
#include <mae/data.hpp>
#include <mae/model.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

using Mae = mae::mae_vit_tiny_28x28_gray;
using Vit = mae::VisionTransformer<Mae::Config>;

struct Splits {
  mae::FashionMnist train, test;
  Splits(const std::string& dir, mae::Index limit, mae::Index test_limit) : train(dir, "train"), test(dir, "t10k") {
    if (limit > 0) train.truncate(limit);
    if (test_limit > 0) test.truncate(test_limit);
  }
};

inline std::vector<int> labels_of(const mae::ImageDataset& ds) {
  std::vector<int> y(static_cast<std::size_t>(ds.size()));
  for (mae::Index i = 0; i < ds.size(); ++i) y[i] = ds.label(i);
  return y;
}

// The encoder: from an MAE pretraining checkpoint, or the MAE initialization (seeded) when
// the path is empty.
inline void start_encoder(Vit& model, const std::string& checkpoint) {
  if (checkpoint.empty()) {
    std::printf("encoder: randomly initialized (no --checkpoint)\n");
  } else {
    model.load_encoder(checkpoint);
    std::printf("encoder: %s\n", checkpoint.c_str());
  }
}

struct Stopwatch {
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); }
};
