// A first look: pretrain the 28x28 grayscale toy MAE for a few steps on synthetic images
// (random oriented stripes) and watch the loss fall. No dataset needed.
//
//   ./build/examples/train_synthetic [steps=60] [batch=32]
#include <mae/mae.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char** argv) {
  using Model = mae::mae_vit_tiny_28x28_gray;
  const int steps = argc > 1 ? std::atoi(argv[1]) : 60;
  const int N = argc > 2 ? std::atoi(argv[2]) : 32;
  if (steps <= 0 || N <= 0) {
    std::fprintf(stderr, "usage: %s [steps > 0] [batch > 0]\n", argv[0]);
    return 2;
  }
  Model model(Model::Options{/*norm_pix_loss=*/false, /*seed=*/0});
  std::printf("%s: %lld parameters, %d threads\n", Model::Config::name().c_str(),
              static_cast<long long>(model.parameters().size()), mae::max_threads());

  // Synthetic images: stripes of random orientation, frequency and phase.
  mae::Rng rng(1);
  std::vector<float> imgs(static_cast<size_t>(N) * 28 * 28);
  auto draw_batch = [&] {
    for (int n = 0; n < N; ++n) {
      const double a = rng.uniform(0, 3.14159), f = rng.uniform(0.2, 0.8), ph = rng.uniform(0, 6.28);
      for (int y = 0; y < 28; ++y)
        for (int x = 0; x < 28; ++x)
          imgs[(n * 28 + y) * 28 + x] = static_cast<float>(std::sin(f * (x * std::cos(a) + y * std::sin(a)) + ph));
    }
  };

  // AdamW with the reference's betas (0.9, 0.95) and weight decay 0.05, at a constant lr
  // (mae::Trainer adds the schedule, checkpoints and logs).
  mae::AdamW<float> optimizer(model.parameters(), mae::AdamWOptions{});
  const double lr = 1e-3;
  const auto t0 = std::chrono::steady_clock::now();
  for (int step = 1; step <= steps; ++step) {
    draw_batch();
    const float loss = model.forward(mae::images(imgs.data(), N, 1, 28, 28), 0.75);
    if (!std::isfinite(loss)) {
      std::fprintf(stderr, "non-finite loss at step %d: stopping\n", step);
      return 1;
    }
    model.zero_grad();
    model.backward();
    optimizer.step(model.parameters(), model.gradients(), lr);
    if (step == 1 || step % 10 == 0 || step == steps) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("step %4d  loss %.4f  (%.1f images/s)\n", step, loss, step * N / s);
      std::fflush(stdout);
    }
  }
  return 0;
}
