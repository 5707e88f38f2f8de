// mae/figures/figures.hpp — pictures of what the model learned: the MAE paper's reconstruction
// figure and the attention maps as PNG grids, and the loss curve (drawn by gnuplot when it is
// installed).
//
// Needs stb_image_write's implementation: link Debian's libstb (the mae::data CMake target).
#ifndef MAE_FIGURES_FIGURES_HPP
#define MAE_FIGURES_FIGURES_HPP

#include "../core/rng.hpp"
#include "../data/loader.hpp"
#include "../inference/metrics.hpp"
#include "../io/files.hpp"
#include "../io/safetensors.hpp"
#include "../layers/loss.hpp"
#include "../layers/patch.hpp"

#include <stb/stb_image_write.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace mae {

// Maps predictions back to pixels: with norm_pix_loss, each patch's prediction is in units of
// that patch's own (unbiased) std around its mean: pixel = pred * sqrt(var + 1e-6) + mean.
template <class S>
inline void unnormalize_patches(S* pred, const S* target_raw, Index rows, Index P) {
  for (Index r = 0; r < rows; ++r) {
    const S* t = target_raw + r * P;
    double m = 0, v = 0;
    for (Index j = 0; j < P; ++j) m += t[j];
    m /= static_cast<double>(P);
    for (Index j = 0; j < P; ++j) v += (t[j] - m) * (t[j] - m);
    v /= static_cast<double>(P - 1);
    const double s = std::sqrt(v + kNormPixEps);
    for (Index j = 0; j < P; ++j) pred[r * P + j] = static_cast<S>(pred[r * P + j] * s + m);
  }
}

// Writes an RGB PNG atomically (pixels (h, w, 3) in [0, 1]).
inline void write_png(const std::string& path, const std::vector<float>& rgb, int w, int h) {
  std::vector<unsigned char> px(rgb.size());
  for (std::size_t i = 0; i < rgb.size(); ++i)
    px[i] = static_cast<unsigned char>(std::lround(std::clamp(rgb[i], 0.0f, 1.0f) * 255.0f));
  std::string bytes;
  auto sink = [](void* ctx, void* data, int size) {
    static_cast<std::string*>(ctx)->append(static_cast<char*>(data), size);
  };
  if (!stbi_write_png_to_func(sink, &bytes, w, h, 3, px.data(), w * 3)) throw Error(path + ": PNG encoding failed");
  write_file(path, bytes);
}

// The reconstruction figure: one row per image, columns original | masked | reconstruction |
// reconstruction with the visible patches pasted back. imgs are normalized (N, C, S, S) as
// the model sees them; loader (de)normalizes. The masking noise comes from `seed`, so the
// model's own generator (and a training run) is not disturbed.
template <class Model>
void save_reconstruction_grid(const std::string& path, Model& model, const BatchLoader& loader,
                              const std::vector<typename Model::Scalar>& imgs, Index N, double mask_ratio,
                              std::uint64_t seed, int upscale = 4) {
  using S = typename Model::Scalar;
  constexpr Index C = Model::C, L = Model::L, P = Model::P, Sz = Model::Config::img_size;
  std::vector<S> noise(static_cast<std::size_t>(N * L));
  Rng r(seed);
  for (auto& v : noise) v = static_cast<S>(r.uniform());
  model.forward(images(imgs.data(), N, C, Sz, Sz), mask_ratio, noise.data());
  std::vector<S> pred(model.pred().data(), model.pred().data() + N * L * P);
  std::vector<S> target(static_cast<std::size_t>(N * L * P));
  patchify(target.data(), imgs.data(), N, Model::patch_shape);
  if (model.norm_pix_loss()) unnormalize_patches(pred.data(), target.data(), N * L, P);
  std::vector<S> masked = target, pasted = target;
  for (Index n = 0; n < N; ++n)
    for (Index l = 0; l < L; ++l) {
      const bool removed = model.mask()(n, l) > 0.5;
      for (Index j = 0; j < P; ++j) {
        const Index i = (n * L + l) * P + j;
        if (removed) masked[i] = std::numeric_limits<S>::quiet_NaN(), pasted[i] = pred[i];
      }
    }
  // four (N, C, S, S) images in [0, 1]
  std::vector<std::vector<float>> cols(4, std::vector<float>(static_cast<std::size_t>(N * C * Sz * Sz)));
  const std::vector<S>* src[4] = {&target, &masked, &pred, &pasted};
  for (int c = 0; c < 4; ++c) {
    std::vector<S> im(static_cast<std::size_t>(N * C * Sz * Sz));
    unpatchify(im.data(), src[c]->data(), N, Model::patch_shape);
    for (Index n = 0; n < N; ++n) {
      float* dst = cols[c].data() + n * C * Sz * Sz;
      for (Index i = 0; i < C * Sz * Sz; ++i) dst[i] = static_cast<float>(im[n * C * Sz * Sz + i]);
      std::vector<char> nan(static_cast<std::size_t>(C * Sz * Sz));
      for (Index i = 0; i < C * Sz * Sz; ++i) nan[i] = std::isnan(dst[i]);
      for (Index i = 0; i < C * Sz * Sz; ++i)
        if (nan[i]) dst[i] = 0;
      loader.denormalize(dst);
      for (Index i = 0; i < C * Sz * Sz; ++i)
        if (nan[i]) dst[i] = 0.5f;  // removed patches: gray
    }
  }
  const int cell = static_cast<int>(Sz) * upscale, gap = 2;
  const int W = 4 * cell + 5 * gap, H = static_cast<int>(N) * cell + (static_cast<int>(N) + 1) * gap;
  std::vector<float> rgb(static_cast<std::size_t>(W * H * 3), 1.0f);
  for (Index n = 0; n < N; ++n)
    for (int c = 0; c < 4; ++c)
      for (int y = 0; y < cell; ++y)
        for (int x = 0; x < cell; ++x)
          for (int ch = 0; ch < 3; ++ch) {
            const Index sc = C == 1 ? 0 : ch;
            const float v = cols[c][((n * C + sc) * Sz + y / upscale) * Sz + x / upscale];
            const int X = gap + c * (cell + gap) + x, Y = gap + static_cast<int>(n) * (cell + gap) + y;
            rgb[(static_cast<std::size_t>(Y) * W + X) * 3 + ch] = v;
          }
  write_png(path, rgb, W, H);
}

// A heat map's colour for v in [0, 1]: black, red, yellow, white (gnuplot's "hot").
inline void heat_colour(double v, float* rgb) {
  v = std::clamp(v, 0.0, 1.0);
  rgb[0] = static_cast<float>(std::min(1.0, 3 * v));
  rgb[1] = static_cast<float>(std::clamp(3 * v - 1, 0.0, 1.0));
  rgb[2] = static_cast<float>(std::clamp(3 * v - 2, 0.0, 1.0));
}

// The attention figure: one row per image, columns picture | rollout | head 1 .. head H, each
// map (G x G, one value per patch) stretched between its own minimum and maximum and drawn in
// "hot" colours over the picture in gray (45% picture, 55% map), a patch as a square of pixels.
// imgs are normalized (N, C, Sz, Sz) as the model saw them; heads (N, H, G*G), rollout (N, G*G).
inline void save_attention_grid(const std::string& path, const BatchLoader& loader, const std::vector<float>& imgs,
                                Index N, Index Sz, const std::vector<float>& heads, const std::vector<float>& rollout,
                                Index H, Index G, int upscale = 0) {
  const Index C = loader.channels(), L = G * G;
  if (upscale <= 0) upscale = static_cast<int>(std::max<Index>(1, 128 / Sz));
  const int cell = static_cast<int>(Sz) * upscale, gap = 2, cols = static_cast<int>(H) + 2;
  const int W = cols * cell + (cols + 1) * gap, Ht = static_cast<int>(N) * cell + (static_cast<int>(N) + 1) * gap;
  std::vector<float> rgb(static_cast<std::size_t>(W) * Ht * 3, 1.0f);
  std::vector<float> pic(static_cast<std::size_t>(C * Sz * Sz));
  for (Index n = 0; n < N; ++n) {
    std::copy_n(imgs.data() + n * C * Sz * Sz, C * Sz * Sz, pic.data());
    loader.denormalize(pic.data());
    for (int c = 0; c < cols; ++c) {
      const float* map = c == 0 ? nullptr : c == 1 ? rollout.data() + n * L : heads.data() + (n * H + c - 2) * L;
      const float low = map ? *std::min_element(map, map + L) : 0.0f;
      const float range = map ? std::max(*std::max_element(map, map + L) - low, 1e-12f) : 1.0f;
      for (int y = 0; y < cell; ++y)
        for (int x = 0; x < cell; ++x) {
          const Index py = y / upscale, px = x / upscale;
          float p[3];
          for (int ch = 0; ch < 3; ++ch) p[ch] = pic[((C == 1 ? 0 : ch) * Sz + py) * Sz + px];
          float* o = &rgb[(static_cast<std::size_t>(gap + static_cast<int>(n) * (cell + gap) + y) * W + gap +
                           c * (cell + gap) + x) *
                          3];
          if (!map) {
            std::copy(p, p + 3, o);
            continue;
          }
          const float gray = (p[0] + p[1] + p[2]) / 3;
          float h[3];
          heat_colour((map[(py * G / Sz) * G + px * G / Sz] - low) / range, h);
          for (int ch = 0; ch < 3; ++ch) o[ch] = 0.45f * gray + 0.55f * h[ch];
        }
    }
  }
  write_png(path, rgb, W, Ht);
}

namespace detail {
// gnuplot draws into a scratch file of the system's temporary directory (never beside the
// target, which may be /dev/null or a pipe); write_file then puts it where the path points.
inline std::string figure_scratch(const std::string& what) {
  static int n = 0;
  return (std::filesystem::temp_directory_path() /
          ("mae-" + std::to_string(::getpid()) + "-" + std::to_string(++n) + "-" + what))
      .string();
}
inline void commit_figure(const std::string& scratch, const std::string& png) {
  try {
    write_file(png, read_file(scratch));
  } catch (...) {
    std::remove(scratch.c_str());
    throw;
  }
  std::remove(scratch.c_str());
}
}  // namespace detail

// Plots the loss column of a training log.csv into a PNG with gnuplot. Returns false (and
// says why on stderr) when gnuplot is missing: apt-get install gnuplot-nox.
inline bool plot_loss_curve(const std::string& csv, const std::string& png,
                            const std::string& title = "MAE pretraining") {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    std::fprintf(stderr, "loss plot skipped: gnuplot is not installed (apt-get install gnuplot-nox)\n");
    return false;
  }
  const std::string tmp = detail::figure_scratch("loss.png");
  const std::string script = "set terminal pngcairo size 900,500 noenhanced; set output '" + tmp +
                             "'; set datafile separator ',';"
                             "set title '" +
                             title +
                             "'; set xlabel 'step'; set ylabel 'loss'; set grid; set key off;"
                             "plot '" +
                             csv +
                             "' using 1:3 every ::1 with lines lw 1 lc rgb '#9ecae1', "
                             "'' using 1:3 every ::1 smooth bezier with lines lw 2 lc rgb '#08519c'";
  const std::string cmd = "gnuplot -e \"" + script + "\" 2>/dev/null";
  if (std::system(cmd.c_str()) != 0) {
    std::remove(tmp.c_str());
    std::fprintf(stderr, "loss plot failed (gnuplot)\n");
    return false;
  }
  detail::commit_figure(tmp, png);
  return true;
}

// The confusion matrix as a heat map (rows: true class, columns: predicted; each row
// normalized to the fraction of its class), drawn by gnuplot. Returns false when gnuplot is
// missing or fails (and says so on stderr).
inline bool plot_confusion_matrix(const std::string& png, const ClassificationReport& r,
                                  const std::vector<std::string>& class_names, const std::string& title) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    std::fprintf(stderr, "confusion matrix skipped: gnuplot is not installed (apt-get install gnuplot-nox)\n");
    return false;
  }
  const Index K = r.classes();
  const auto label = [&](Index k) {
    std::string n = k < static_cast<Index>(class_names.size()) ? class_names[k] : std::to_string(k);
    for (char& c : n)
      if (c == '\'' || c == '"' || c == '\\' || c == '$' || c == '`') c = '_';
    return n;
  };
  const std::string dat = detail::figure_scratch("confusion.dat"), tmp = detail::figure_scratch("confusion.png");
  {
    std::ofstream f(dat);
    for (Index t = 0; t < K; ++t) {
      const double n = static_cast<double>(std::max<Index>(1, r.class_count(t)));
      for (Index p = 0; p < K; ++p) f << (p ? " " : "") << static_cast<double>(r.confusion(t, p)) / n;
      f << "\n";
    }
    if (!f) return false;
  }
  std::string tics;
  for (Index k = 0; k < K; ++k) tics += (k ? ", '" : "'") + label(k) + "' " + std::to_string(k);
  const int side = static_cast<int>(std::clamp<Index>(200 + 40 * K, 500, 1600));
  std::string script = "set terminal pngcairo size " + std::to_string(side + 150) + "," + std::to_string(side) +
                       " noenhanced; set output '" + tmp + "'; set title '" + title +
                       "'; set xlabel 'predicted'; set ylabel 'true'; set xtics (" + tics +
                       ") rotate by 45 right; set ytics (" + tics +
                       "); set yrange [] reverse; set cbrange [0:1]; set palette defined (0 'white', 1 '#08519c');"
                       " set size ratio -1; set key off;";
  if (K <= 20)
    script += " plot '" + dat + "' matrix with image, '' matrix using 1:2:(sprintf('%.2f', column(3))) with labels";
  else
    script += " plot '" + dat + "' matrix with image";
  const std::string cmd = "gnuplot -e \"" + script + "\" 2>/dev/null";
  const bool ok = std::system(cmd.c_str()) == 0;
  std::remove(dat.c_str());
  if (!ok) {
    std::remove(tmp.c_str());
    std::fprintf(stderr, "confusion matrix plot failed (gnuplot)\n");
    return false;
  }
  detail::commit_figure(tmp, png);
  return true;
}

}  // namespace mae

#endif  // MAE_FIGURES_FIGURES_HPP
