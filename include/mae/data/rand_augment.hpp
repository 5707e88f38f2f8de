// mae/data/rand_augment.hpp — RandAugment as the reference fine-tunes with it: timm's
// rand_augment_transform("rand-m9-mstd0.5-inc1") on 8-bit images, each operation written after
// the PIL function timm calls (ImageOps, ImageEnhance, Image.transform with bicubic and the
// dataset mean as fill), checked against PIL by tests/fixtures/augment_timm.safetensors.
//
//   for each of num_ops (2) operations, drawn uniformly with replacement from the 15 below:
//     with probability prob (0.5):
//       m   = clip(normal(magnitude 9, magnitude_std 0.5), 0, magnitude_max 10)
//       arg = level_to_arg(op, m)           (a random sign for rotate / shear / translate / enhance)
//       img = op(img, arg)
//
// Images are planar (C, H, W) uint8, as PIL's bands. With one channel, Color is the identity
// (the grey image is its own greyscale: what PIL does to an RGB image of a grey picture). The
// randomness is this library's Rng, not Python's: the draws cannot match timm's one for one;
// tests check the operations exactly and the draws by their frequencies.
#ifndef MAE_DATA_RAND_AUGMENT_HPP
#define MAE_DATA_RAND_AUGMENT_HPP

#include "../core/common.hpp"
#include "../core/rng.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace mae {

// An 8-bit planar image (C, H, W), the form PIL's operations work on.
struct ImageU8 {
  Index C = 0, H = 0, W = 0;
  std::vector<std::uint8_t> px;  // (C, H, W)
  ImageU8() = default;
  ImageU8(Index c, Index h, Index w) : C(c), H(h), W(w), px(static_cast<std::size_t>(c * h * w)) {}
  std::uint8_t* plane(Index c) { return px.data() + c * H * W; }
  const std::uint8_t* plane(Index c) const { return px.data() + c * H * W; }
  // From floats in [0, 1] (clamped, rounded: what a PIL image of them holds) and back (ToTensor).
  void from_float(const float* src) {
    for (std::size_t i = 0; i < px.size(); ++i)
      px[i] = static_cast<std::uint8_t>(std::nearbyint(std::clamp(src[i], 0.0f, 1.0f) * 255.0f));
  }
  void to_float(float* dst) const {
    for (std::size_t i = 0; i < px.size(); ++i) dst[i] = static_cast<float>(px[i]) / 255.0f;
  }
};

enum class RandAugmentOp {
  auto_contrast,
  equalize,
  invert,
  rotate,
  posterize,
  solarize,
  solarize_add,
  color,
  contrast,
  brightness,
  sharpness,
  shear_x,
  shear_y,
  translate_x,
  translate_y,
};
inline constexpr int kRandAugmentOps = 15;  // timm's _RAND_INCREASING_TRANSFORMS (and _RAND_TRANSFORMS)

inline const char* rand_augment_op_name(RandAugmentOp op) {
  static const char* names[kRandAugmentOps] = {"AutoContrast", "Equalize",     "Invert",     "Rotate",
                                               "Posterize",    "Solarize",     "SolarizeAdd", "Color",
                                               "Contrast",     "Brightness",   "Sharpness",  "ShearX",
                                               "ShearY",       "TranslateXRel", "TranslateYRel"};
  return names[static_cast<int>(op)];
}

struct RandAugmentOptions {
  int num_ops = 2;             // n
  double magnitude = 9;        // m
  double magnitude_std = 0.5;  // mstd: the magnitude is drawn from N(m, mstd) (0: fixed)
  double magnitude_max = 10;   // mmax: upper clip of the drawn magnitude
  double prob = 0.5;           // p: each drawn operation applies with this probability
  bool increasing = true;      // inc1: the "Increasing" variants (a larger magnitude, a stronger change)
  double translate_pct = 0.45;

  // The options as a config string parse() reads back (every key spelled out).
  std::string spec() const {
    char buf[160];
    std::snprintf(buf, sizeof buf, "rand-n%d-m%.17g-mstd%.17g-mmax%.17g-p%.17g-inc%d", num_ops, magnitude,
                  magnitude_std, magnitude_max, prob, increasing ? 1 : 0);
    return buf;
  }

  // timm's config string, e.g. "rand-m9-mstd0.5-inc1" (keys m, n, mstd, mmax, inc, p).
  static RandAugmentOptions parse(const std::string& spec) {
    const auto bad = [&](const std::string& why) { return Error("RandAugment '" + spec + "': " + why); };
    std::vector<std::string> parts;
    for (std::size_t s = 0, e; s <= spec.size(); s = e + 1) {
      e = spec.find('-', s);
      if (e == std::string::npos) e = spec.size();
      parts.push_back(spec.substr(s, e - s));
    }
    if (parts.empty() || parts[0] != "rand") throw bad("must start with 'rand' (e.g. rand-m9-mstd0.5-inc1)");
    RandAugmentOptions o;
    o.increasing = false;  // timm: off unless inc1
    for (std::size_t i = 1; i < parts.size(); ++i) {
      const std::string& p = parts[i];
      std::size_t k = 0;
      while (k < p.size() && std::isalpha(static_cast<unsigned char>(p[k]))) ++k;
      const std::string key = p.substr(0, k), val = p.substr(k);
      double v = 0;
      try {
        std::size_t used = 0;
        v = std::stod(val, &used);
        if (used != val.size()) throw bad("'" + p + "' is not a key and a number");
      } catch (const Error&) {
        throw;
      } catch (...) {
        throw bad("'" + p + "' is not a key and a number");
      }
      if (!std::isfinite(v)) throw bad("'" + p + "' is not finite");
      if (key == "m") o.magnitude = v;
      else if (key == "n") o.num_ops = static_cast<int>(v);
      else if (key == "mstd") o.magnitude_std = v;
      else if (key == "mmax") o.magnitude_max = v;
      else if (key == "inc") o.increasing = v != 0;
      else if (key == "p") o.prob = v;
      else throw bad("unknown key '" + key + "' (m, n, mstd, mmax, inc, p)");
    }
    if (o.num_ops < 0 || o.num_ops > 16) throw bad("n must be in [0, 16]");
    if (o.magnitude < 0 || o.magnitude_std < 0 || o.magnitude_max <= 0) throw bad("m, mstd >= 0 and mmax > 0");
    if (o.prob < 0 || o.prob > 1) throw bad("p must be in [0, 1]");
    return o;
  }
};

// --- the operations (PIL's, on each band) --------------------------------------------------
namespace ra_detail {

inline void apply_lut(ImageU8& img, Index c, const std::array<std::uint8_t, 256>& lut) {
  std::uint8_t* p = img.plane(c);
  for (Index i = 0; i < img.H * img.W; ++i) p[i] = lut[p[i]];
}
inline std::array<Index, 256> histogram(const ImageU8& img, Index c) {
  std::array<Index, 256> h{};
  const std::uint8_t* p = img.plane(c);
  for (Index i = 0; i < img.H * img.W; ++i) ++h[p[i]];
  return h;
}
inline std::uint8_t clip8(float v) { return v <= 0.0f ? 0 : v >= 255.0f ? 255 : static_cast<std::uint8_t>(v); }

// Image.blend(degenerate, img, factor): degenerate + factor (img - degenerate), truncated.
inline void blend(ImageU8& img, const ImageU8& degenerate, double factor) {
  const float a = static_cast<float>(factor);
  const bool inside = factor >= 0 && factor <= 1;
  for (std::size_t i = 0; i < img.px.size(); ++i) {
    const int d = degenerate.px[i], v = img.px[i];
    const float t = static_cast<float>(d) + unfused_mul(a, static_cast<float>(v - d));
    img.px[i] = inside ? static_cast<std::uint8_t>(t) : clip8(t);
  }
}
// image.convert("L"): ITU-R 601-2 luma in PIL's fixed point; one channel: itself.
inline std::vector<std::uint8_t> luma(const ImageU8& img) {
  const Index HW = img.H * img.W;
  std::vector<std::uint8_t> l(img.plane(0), img.plane(0) + HW);
  if (img.C == 3)
    for (Index i = 0; i < HW; ++i)
      l[i] = static_cast<std::uint8_t>(
          (img.plane(0)[i] * 19595 + img.plane(1)[i] * 38470 + img.plane(2)[i] * 7471 + 0x8000) >> 16);
  return l;
}

inline void auto_contrast(ImageU8& img) {  // ImageOps.autocontrast(img), cutoff 0
  for (Index c = 0; c < img.C; ++c) {
    const auto h = histogram(img, c);
    int lo = 0, hi = 255;
    while (lo < 256 && !h[lo]) ++lo;
    while (hi >= 0 && !h[hi]) --hi;
    std::array<std::uint8_t, 256> lut;
    for (int i = 0; i < 256; ++i) lut[i] = static_cast<std::uint8_t>(i);
    if (hi > lo) {
      const double scale = 255.0 / (hi - lo), offset = -lo * scale;
      for (int i = 0; i < 256; ++i)
        lut[i] = static_cast<std::uint8_t>(std::clamp(static_cast<int>(i * scale + offset), 0, 255));
    }
    apply_lut(img, c, lut);
  }
}

inline void equalize(ImageU8& img) {  // ImageOps.equalize(img)
  for (Index c = 0; c < img.C; ++c) {
    const auto h = histogram(img, c);
    Index total = 0, last = 0, used = 0;
    for (int i = 0; i < 256; ++i)
      if (h[i]) total += h[i], last = h[i], ++used;
    std::array<std::uint8_t, 256> lut;
    for (int i = 0; i < 256; ++i) lut[i] = static_cast<std::uint8_t>(i);
    const Index step = used <= 1 ? 0 : (total - last) / 255;
    if (step) {
      Index n = step / 2;
      for (int i = 0; i < 256; ++i) lut[i] = static_cast<std::uint8_t>(std::min<Index>(n / step, 255)), n += h[i];
    }
    apply_lut(img, c, lut);
  }
}

template <class F>
inline void point(ImageU8& img, F&& f) {
  std::array<std::uint8_t, 256> lut;
  for (int i = 0; i < 256; ++i) lut[i] = static_cast<std::uint8_t>(f(i));
  for (Index c = 0; c < img.C; ++c) apply_lut(img, c, lut);
}

// ImageFilter.SMOOTH (3x3, [1 1 1; 1 5 1; 1 1 1] / 13, rounded): the border pixels are kept.
inline ImageU8 smooth(const ImageU8& img) {
  ImageU8 out = img;
  const float k1 = static_cast<float>(1.0 / 13.0), k5 = static_cast<float>(5.0 / 13.0);
  const Index H = img.H, W = img.W;
  for (Index c = 0; c < img.C; ++c)
    for (Index y = 1; y + 1 < H; ++y) {
      const std::uint8_t *up = img.plane(c) + (y - 1) * W, *mid = img.plane(c) + y * W,
                         *dn = img.plane(c) + (y + 1) * W;
      for (Index x = 1; x + 1 < W; ++x) {
        const auto row = [](const std::uint8_t* q, Index i, float ka, float kb) {  // PIL's KERNEL1x3
          return unfused_mul(static_cast<float>(q[i - 1]), ka) + unfused_mul(static_cast<float>(q[i]), kb) +
                 unfused_mul(static_cast<float>(q[i + 1]), ka);
        };
        float ss = 0.5f;
        ss += row(dn, x, k1, k1);
        ss += row(mid, x, k1, k5);
        ss += row(up, x, k1, k1);
        out.plane(c)[y * W + x] = clip8(ss);
      }
    }
  return out;
}

// Image.transform(size, AFFINE, (a, b, c, d, e, f), BICUBIC, fillcolor=fill): output pixel
// (x, y) samples the input at (a x' + b y' + c, d x' + e y' + f), x' = x + 0.5, with PIL's
// transform cubic (a = -1), the edge rows and columns repeated, truncated to 8 bits; a sample
// outside the input is the fill colour.
inline void affine(ImageU8& img, const std::array<double, 6>& m, const std::uint8_t* fill) {
  const ImageU8 src = img;
  const Index H = img.H, W = img.W;
  const auto cubic = [](double v1, double v2, double v3, double v4, double d) {
    const double p1 = v2, p2 = -v1 + v3, p3 = 2 * (v1 - v2) + v3 - v4, p4 = -v1 + v2 - v3 + v4;
    return p1 + unfused_mul(d, p2 + unfused_mul(d, p3 + unfused_mul(d, p4)));
  };
  const auto floor_int = [](double v) { return static_cast<Index>(std::floor(v)); };
  const auto xclip = [W](Index x) { return x < 0 ? 0 : x < W ? x : W - 1; };
  for (Index y = 0; y < H; ++y)
    for (Index x = 0; x < W; ++x) {
      const double xo = static_cast<double>(x) + 0.5, yo = static_cast<double>(y) + 0.5;
      double xin = unfused_mul(m[0], xo) + unfused_mul(m[1], yo) + m[2];
      double yin = unfused_mul(m[3], xo) + unfused_mul(m[4], yo) + m[5];
      if (xin < 0.0 || xin >= static_cast<double>(W) || yin < 0.0 || yin >= static_cast<double>(H)) {
        for (Index c = 0; c < img.C; ++c) img.plane(c)[y * W + x] = fill[c];
        continue;
      }
      xin -= 0.5, yin -= 0.5;
      const Index xi = floor_int(xin) - 1, yi = floor_int(yin) - 1;
      const double dx = xin - static_cast<double>(xi + 1), dy = yin - static_cast<double>(yi + 1);
      const Index x0 = xclip(xi), x1 = xclip(xi + 1), x2 = xclip(xi + 2), x3 = xclip(xi + 3);
      for (Index c = 0; c < img.C; ++c) {
        const std::uint8_t* p = src.plane(c);
        const auto row = [&](Index r) {
          const std::uint8_t* q = p + r * W;
          return cubic(q[x0], q[x1], q[x2], q[x3], dx);
        };
        const double v1 = row(std::clamp<Index>(yi, 0, H - 1));
        const double v2 = yi + 1 >= 0 && yi + 1 < H ? row(yi + 1) : v1;
        const double v3 = yi + 2 >= 0 && yi + 2 < H ? row(yi + 2) : v2;
        const double v4 = yi + 3 >= 0 && yi + 3 < H ? row(yi + 3) : v3;
        const double v = cubic(v1, v2, v3, v4, dy);
        img.plane(c)[y * W + x] = v <= 0.0 ? 0 : v >= 255.0 ? 255 : static_cast<std::uint8_t>(v);
      }
    }
}

// Image.rotate(degrees, BICUBIC, fillcolor): counter-clockwise about the centre (w/2, h/2).
inline void rotate(ImageU8& img, double degrees, const std::uint8_t* fill) {
  double angle = std::fmod(degrees, 360.0);  // Python's angle % 360.0: in [0, 360)
  if (angle < 0) angle += 360.0;
  if (angle == 0) return;
  const double r = -(angle * (3.14159265358979323846 / 180.0));  // -math.radians(angle)
  const auto round15 = [](double v) { return std::nearbyint(v * 1e15) / 1e15; };
  std::array<double, 6> m = {round15(std::cos(r)), round15(std::sin(r)), 0.0,
                             round15(-std::sin(r)), round15(std::cos(r)), 0.0};
  const double cx = static_cast<double>(img.W) / 2.0, cy = static_cast<double>(img.H) / 2.0;
  m[2] = unfused_mul(m[0], -cx) + unfused_mul(m[1], -cy) + m[2] + cx;
  m[5] = unfused_mul(m[3], -cx) + unfused_mul(m[4], -cy) + m[5] + cy;
  affine(img, m, fill);
}

}  // namespace ra_detail

// Applies op with its argument (as timm's level_to_arg returns it). fill: one value per channel.
inline void rand_augment_apply(ImageU8& img, RandAugmentOp op, double arg, const std::uint8_t* fill) {
  using namespace ra_detail;
  switch (op) {
    case RandAugmentOp::auto_contrast: auto_contrast(img); return;
    case RandAugmentOp::equalize: equalize(img); return;
    case RandAugmentOp::invert: point(img, [](int i) { return 255 - i; }); return;
    case RandAugmentOp::rotate: rotate(img, arg, fill); return;
    case RandAugmentOp::posterize: {  // keep the `arg` high bits
      const int bits = static_cast<int>(arg);
      if (bits >= 8) return;
      const int mask = ~((1 << (8 - std::max(bits, 0))) - 1);
      point(img, [mask](int i) { return i & mask; });
      return;
    }
    case RandAugmentOp::solarize: {
      const int t = static_cast<int>(arg);
      point(img, [t](int i) { return i < t ? i : 255 - i; });
      return;
    }
    case RandAugmentOp::solarize_add: {  // add to the pixels below 128
      const int add = static_cast<int>(arg);
      point(img, [add](int i) { return i < 128 ? std::min(255, i + add) : i; });
      return;
    }
    case RandAugmentOp::color: {  // saturation: blend with the greyscale image
      if (img.C != 3) return;
      ImageU8 grey(img.C, img.H, img.W);
      const auto l = luma(img);
      for (Index c = 0; c < 3; ++c) std::copy(l.begin(), l.end(), grey.plane(c));
      blend(img, grey, arg);
      return;
    }
    case RandAugmentOp::contrast: {  // blend with the mean grey level
      const auto l = luma(img);
      double sum = 0;
      for (std::uint8_t v : l) sum += v;
      ImageU8 mean(img.C, img.H, img.W);
      std::fill(mean.px.begin(), mean.px.end(), static_cast<std::uint8_t>(sum / static_cast<double>(l.size()) + 0.5));
      blend(img, mean, arg);
      return;
    }
    case RandAugmentOp::brightness: {  // blend with black
      ImageU8 black(img.C, img.H, img.W);
      blend(img, black, arg);
      return;
    }
    case RandAugmentOp::sharpness: blend(img, smooth(img), arg); return;
    case RandAugmentOp::shear_x: affine(img, {1, arg, 0, 0, 1, 0}, fill); return;
    case RandAugmentOp::shear_y: affine(img, {1, 0, 0, arg, 1, 0}, fill); return;
    case RandAugmentOp::translate_x: affine(img, {1, 0, arg * static_cast<double>(img.W), 0, 1, 0}, fill); return;
    case RandAugmentOp::translate_y: affine(img, {1, 0, 0, 0, 1, arg * static_cast<double>(img.H)}, fill); return;
  }
}

// timm's level_to_arg for a magnitude m in [0, 10]; `negate` is the coin of _randomly_negate.
inline double rand_augment_arg(RandAugmentOp op, double m, bool negate, const RandAugmentOptions& o) {
  const double level = m / 10.0, sign = negate ? -1.0 : 1.0;
  switch (op) {
    case RandAugmentOp::rotate: return sign * level * 30.0;
    case RandAugmentOp::posterize: {
      const int keep = static_cast<int>(level * 4);
      return o.increasing ? 4 - keep : keep;
    }
    case RandAugmentOp::solarize: {
      const int t = std::min(256, static_cast<int>(level * 256));
      return o.increasing ? 256 - t : t;
    }
    case RandAugmentOp::solarize_add: return std::min(128, static_cast<int>(level * 110));
    case RandAugmentOp::color:
    case RandAugmentOp::contrast:
    case RandAugmentOp::brightness:
    case RandAugmentOp::sharpness:
      return o.increasing ? std::max(0.1, 1.0 + sign * level * 0.9) : level * 1.8 + 0.1;
    case RandAugmentOp::shear_x:
    case RandAugmentOp::shear_y: return sign * level * 0.3;
    case RandAugmentOp::translate_x:
    case RandAugmentOp::translate_y: return sign * level * o.translate_pct;
    default: return 0;
  }
}

// One operation's draws (timm's RandAugment.__call__ picks the op, AugmentOp.__call__ the rest):
// which op, whether it applies, its magnitude and the argument level_to_arg makes of it.
struct RandAugmentDraw {
  RandAugmentOp op = RandAugmentOp::auto_contrast;
  bool applied = false;
  double magnitude = 0, arg = 0;
};
inline RandAugmentDraw rand_augment_draw(Rng& r, const RandAugmentOptions& o) {
  RandAugmentDraw d;
  d.op = static_cast<RandAugmentOp>(
      std::min<int>(static_cast<int>(r.uniform() * kRandAugmentOps), kRandAugmentOps - 1));
  if (o.prob < 1.0 && r.uniform() > o.prob) return d;
  d.applied = true;
  double m = o.magnitude;
  if (o.magnitude_std > 0) m = o.magnitude + o.magnitude_std * r.normal();
  d.magnitude = std::max(0.0, std::min(m, o.magnitude_max));
  const bool negate = r.uniform() > 0.5;  // _randomly_negate
  d.arg = rand_augment_arg(d.op, d.magnitude, negate, o);
  return d;
}

// RandAugment on img: num_ops draws, each applied with its probability.
inline void rand_augment(ImageU8& img, Rng& r, const RandAugmentOptions& o, const std::uint8_t* fill) {
  for (int k = 0; k < o.num_ops; ++k) {
    const RandAugmentDraw d = rand_augment_draw(r, o);
    if (d.applied) rand_augment_apply(img, d.op, d.arg, fill);
  }
}

}  // namespace mae

#endif  // MAE_DATA_RAND_AUGMENT_HPP
