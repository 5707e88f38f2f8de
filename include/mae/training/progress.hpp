// mae/training/progress.hpp — the training loops' progress output: a redrawn bar on a terminal,
// plain lines every few seconds otherwise (logs, CI).
#ifndef MAE_TRAINING_PROGRESS_HPP
#define MAE_TRAINING_PROGRESS_HPP

#include "../core/common.hpp"

#include <chrono>
#include <cstdio>
#include <string>

#include <unistd.h>

namespace mae {

class Progress {
 public:
  explicit Progress(bool enabled = true, double interval_s = 15)
      : enabled_(enabled), interval_s_(interval_s), tty_(::isatty(STDOUT_FILENO) != 0) {}

  // Step k of iters in epoch (1-based) of epochs; eta in seconds.
  void update(int epoch, int epochs, Index k, Index iters, double loss, double lr, double images_per_s, double eta) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    const double since = std::chrono::duration<double>(now - last_).count();
    if (tty_) {
      if (since < 0.1 && k != iters) return;  // at most 10 redraws a second
      last_ = now;
      const int width = 24, filled = static_cast<int>(width * k / iters);
      std::string bar(static_cast<std::size_t>(filled), '=');
      if (filled < width) bar += '>' + std::string(static_cast<std::size_t>(width - filled - 1), ' ');
      std::printf("\repoch %d/%d [%s] %lld/%lld  loss %.4f  lr %.2e  %.0f img/s  ETA %s   ", epoch, epochs, bar.c_str(),
                  static_cast<long long>(k), static_cast<long long>(iters), loss, lr, images_per_s, hms(eta).c_str());
      std::fflush(stdout);
      line_open_ = true;
    } else if (since >= interval_s_ || k == iters || first_) {
      last_ = now;
      std::printf("epoch %d/%d step %lld/%lld  loss %.4f  lr %.2e  %.0f img/s  ETA %s\n", epoch, epochs,
                  static_cast<long long>(k), static_cast<long long>(iters), loss, lr, images_per_s, hms(eta).c_str());
      std::fflush(stdout);
    }
    first_ = false;
  }

  // Ends a bar line before other output.
  void finish_line() {
    if (line_open_) std::printf("\n"), line_open_ = false;
  }

  static std::string hms(double s) {
    const long t = static_cast<long>(s + 0.5);
    char b[32];
    if (t >= 3600)
      std::snprintf(b, sizeof b, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else
      std::snprintf(b, sizeof b, "%02ld:%02ld", t / 60, t % 60);
    return b;
  }

 private:
  bool enabled_;
  double interval_s_;
  bool tty_;
  bool line_open_ = false, first_ = true;
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

}  // namespace mae

#endif  // MAE_TRAINING_PROGRESS_HPP
