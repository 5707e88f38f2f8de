// Prints a hash of everything a few training steps compute, for fp32 and bf16 products: built
// against two versions of the headers, the same lines mean the same bits (a refactor's check).
//   g++ -O3 -march=native -fopenmp -std=c++17 -I include -I /usr/include/eigen3 dev/bits_probe.cpp
//   OMP_NUM_THREADS=1 ./a.out; OMP_NUM_THREADS=2 ./a.out
#include <mae/mae.hpp>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

namespace {
std::uint64_t fnv(const float* x, mae::Index n, std::uint64_t h = 1469598103934665603ull) {
  for (mae::Index i = 0; i < n; ++i) {
    std::uint32_t u;
    std::memcpy(&u, x + i, 4);
    for (int b = 0; b < 4; ++b) h = (h ^ ((u >> (8 * b)) & 0xff)) * 1099511628211ull;
  }
  return h;
}

template <class Model>
void run(const char* name, mae::Precision p, int C, int H) {
  typename Model::Options o;
  o.norm_pix_loss = true;
  o.seed = 3;
  o.precision = p;
  Model model(o);
  mae::AdamW<float> opt(model.parameters(), mae::AdamWOptions{});
  const int N = 8;
  mae::Rng rng(5);
  std::vector<float> img(static_cast<std::size_t>(N) * C * H * H);
  for (int step = 0; step < 3; ++step) {
    for (auto& v : img) v = static_cast<float>(rng.uniform(-1, 1));
    const float loss = model.forward(mae::images(img.data(), N, C, H, H), 0.75);
    model.zero_grad();
    model.backward();
    const std::uint64_t g = fnv(model.gradients().data(), model.gradients().size());
    opt.step(model.parameters(), model.gradients(), 1e-3);
    std::printf("%s %s step %d loss %a grads %016llx params %016llx\n", name,
                p == mae::Precision::bf16 ? "bf16" : "fp32", step, loss, static_cast<unsigned long long>(g),
                static_cast<unsigned long long>(fnv(model.parameters().data(), model.parameters().size())));
  }
}
}  // namespace

int main() {
  for (auto p : {mae::Precision::fp32, mae::Precision::bf16}) {
    run<mae::mae_vit_tiny_28x28_gray>("28x28", p, 1, 28);
    run<mae::MaskedAutoencoder<mae::Config<64, 8, 3, 96, 2, 3, 64, 1, 2, 4, float>>>("64x64", p, 3, 64);
  }
}
