// data/: the fine-tuning recipe's augmentations against timm and PIL
// (tests/fixtures/augment_timm.safetensors, written by tests/make_augment_fixtures.py from
// timm's own functions): every RandAugment operation exactly, level_to_arg, Mixup's mixing and
// targets, random erasing. (SoftTargetCrossEntropy: test_layers.cpp; clip_grad_norm_:
// test_optim.cpp.) What timm draws at random (Python's and
// numpy's generators) cannot be reproduced, so the draws are checked by their distributions.
#include "test_util.hpp"

#include <mae/training/finetune.hpp>

#include <map>
#include <sstream>

using mae::Index;

namespace {

const mae::safetensors::File& fixture() { return mae_test::fixture_file("augment_timm"); }
using mae_test::words;

mae::ImageU8 fixture_image(const std::string& name) {
  mae::Shape shape;
  const std::vector<double> v = fixture().read<double>(name, &shape);
  REQUIRE(shape.size() == 3);
  mae::ImageU8 img(shape[0], shape[1], shape[2]);
  for (std::size_t i = 0; i < v.size(); ++i) img.px[i] = static_cast<std::uint8_t>(v[i]);
  return img;
}

mae::RandAugmentOp op_named(const std::string& name) {
  for (int k = 0; k < mae::kRandAugmentOps; ++k)
    if (name == mae::rand_augment_op_name(static_cast<mae::RandAugmentOp>(k)))
      return static_cast<mae::RandAugmentOp>(k);
  FAIL("no operation named " << name);
  return mae::RandAugmentOp::invert;
}

}  // namespace

TEST_CASE("RandAugment: every operation equals timm's on PIL, pixel for pixel") {
  const auto& f = fixture();
  const auto ops = words(f.metadata().at("ops"));
  REQUIRE(ops.size() == static_cast<std::size_t>(mae::kRandAugmentOps));
  int compared = 0;
  for (const std::string& image : words(f.metadata().at("images"))) {
    const mae::ImageU8 src = fixture_image("image." + image);
    const std::vector<double> fill_d = f.read<double>("fill." + image);
    std::vector<std::uint8_t> fill(fill_d.begin(), fill_d.end());
    REQUIRE(fill.size() == static_cast<std::size_t>(src.C));
    for (const std::string& op : ops) {
      const std::vector<double> args = f.read<double>("args." + op);
      for (std::size_t k = 0; k < args.size(); ++k) {
        const mae::ImageU8 want = fixture_image("ra." + op + "." + image + "." + std::to_string(k));
        mae::ImageU8 got = src;
        mae::rand_augment_apply(got, op_named(op), args[k], fill.data());
        Index differ = 0, first = -1;
        for (std::size_t i = 0; i < got.px.size(); ++i)
          if (got.px[i] != want.px[i]) {
            if (first < 0) first = static_cast<Index>(i);
            ++differ;
          }
        INFO(op, "(", args[k], ") on ", image, ": ", differ, " of ", got.px.size(), " pixels differ; first at ",
             first, first >= 0 ? " ours " + std::to_string(got.px[first]) + " PIL " + std::to_string(want.px[first])
                               : std::string());
        CHECK(differ == 0);
        ++compared;
      }
    }
  }
  CHECK(compared >= 3 * 60);
  // the histogram operations on a larger picture, where Equalize's step is well above 1
  const mae::ImageU8 big = fixture_image("image.big");
  for (const std::string& op : words(f.metadata().at("big_ops"))) {
    mae::ImageU8 got = big;
    mae::rand_augment_apply(got, op_named(op), 0, nullptr);
    INFO(op, " on the 64x48 picture");
    CHECK(got.px == fixture_image("ra." + op + ".big.0").px);
  }
}

TEST_CASE("RandAugment: level_to_arg equals timm's (rand-...-inc1 and the plain variants)") {
  const auto& f = fixture();
  const std::vector<double> levels = f.read<double>("levels");
  const auto inc = mae::RandAugmentOptions::parse("rand-m9-mstd0.5-inc1");
  const auto plain = mae::RandAugmentOptions::parse("rand-m9-mstd0.5");
  CHECK(inc.increasing);
  CHECK_FALSE(plain.increasing);
  for (const std::string& op : words(f.metadata().at("level_ops"))) {
    const std::vector<double> want = f.read<double>("level." + op);  // (2, levels): kept, negated
    REQUIRE(want.size() == 2 * levels.size());
    for (int neg = 0; neg < 2; ++neg)
      for (std::size_t i = 0; i < levels.size(); ++i) {
        INFO(op, " m=", levels[i], neg ? " negated" : "");
        CHECK(mae::rand_augment_arg(op_named(op), levels[i], neg == 1, inc) ==
              doctest::Approx(want[neg * levels.size() + i]).epsilon(1e-15));
      }
  }
  for (const char* op : {"Color", "Posterize", "Solarize"}) {
    const std::vector<double> want = f.read<double>(std::string("level_plain.") + op);
    for (std::size_t i = 0; i < levels.size(); ++i) {
      INFO(op, " m=", levels[i]);
      CHECK(mae::rand_augment_arg(op_named(op), levels[i], false, plain) == doctest::Approx(want[i]).epsilon(1e-15));
    }
  }
}

TEST_CASE("RandAugment: spec parsing, and bad specs refused with the spec named") {
  const auto o = mae::RandAugmentOptions::parse("rand-m9-mstd0.5-inc1");
  CHECK(o.num_ops == 2);
  CHECK(o.magnitude == 9);
  CHECK(o.magnitude_std == 0.5);
  CHECK(o.prob == 0.5);
  const auto o2 = mae::RandAugmentOptions::parse("rand-n3-m7-p0.8-mmax12");
  CHECK(o2.num_ops == 3);
  CHECK(o2.magnitude == 7);
  CHECK(o2.prob == 0.8);
  CHECK(o2.magnitude_max == 12);
  for (const char* bad : {"rand-m", "augmix-m9", "rand-x3", "rand-m9-p2", "rand-n-1", "rand-m9x"}) {
    INFO(bad);
    try {
      mae::RandAugmentOptions::parse(bad);
      FAIL("accepted");
    } catch (const mae::Error& e) {
      CHECK(std::string(e.what()).find(bad) != std::string::npos);
    }
  }
}

TEST_CASE("RandAugment: the draws follow timm's distribution (uniform ops, p 0.5, m ~ N(9, 0.5) clipped to 10)") {
  const auto o = mae::RandAugmentOptions::parse("rand-m9-mstd0.5-inc1");
  mae::Rng r(123);
  const int n = 150000;
  std::vector<int> count(mae::kRandAugmentOps, 0);
  int applied = 0, at_max = 0, negated_rotations = 0, rotations = 0;
  double msum = 0, msq = 0;
  for (int i = 0; i < n; ++i) {
    const mae::RandAugmentDraw d = mae::rand_augment_draw(r, o);
    ++count[static_cast<int>(d.op)];
    if (!d.applied) continue;
    ++applied;
    CHECK_MESSAGE((d.magnitude >= 0 && d.magnitude <= 10), d.magnitude);
    at_max += d.magnitude == 10;
    msum += d.magnitude, msq += d.magnitude * d.magnitude;
    if (d.op == mae::RandAugmentOp::rotate) {
      ++rotations;
      negated_rotations += d.arg < 0;
      CHECK(std::abs(d.arg) == doctest::Approx(3 * d.magnitude));
    }
  }
  const double expect = static_cast<double>(n) / mae::kRandAugmentOps, count_sd = std::sqrt(expect);
  for (int k = 0; k < mae::kRandAugmentOps; ++k) CHECK(std::abs(count[k] - expect) < 5 * count_sd);
  CHECK(std::abs(applied - n / 2.0) < 5 * std::sqrt(n / 4.0));
  // N(9, 0.5) clipped at 10: P(m = 10) = P(Z > 2) = 0.02275, E[min(m, 10)] = 8.99561, its
  // standard deviation 0.48972 (with mstd 0.6: 0.0478, 8.9883, 0.575); bounds of 5 standard errors
  const double p_max = static_cast<double>(at_max) / applied, mean = msum / applied;
  const double sd = std::sqrt(msq / applied - mean * mean);
  INFO("P(m = 10) ", p_max, ", E[m] ", mean, ", sd ", sd, " over ", applied, " draws");
  CHECK(std::abs(p_max - 0.02275) < 5 * std::sqrt(0.02275 * 0.97725 / applied));
  CHECK(std::abs(mean - 8.99561) < 5 * 0.49 / std::sqrt(applied));
  CHECK(std::abs(sd - 0.48972) < 5 * 0.49 / std::sqrt(2.0 * applied));
  CHECK(std::abs(negated_rotations - rotations / 2.0) < 5 * std::sqrt(rotations / 4.0));
}

TEST_CASE("Mixup and CutMix: the mixed batch and the soft targets equal timm's for the same lam and box") {
  const auto& f = fixture();
  mae::Shape shape;
  const std::vector<float> x = f.read<float>("mix.x", &shape);
  REQUIRE(shape.size() == 4);
  const Index N = shape[0], C = shape[1], H = shape[2], W = shape[3], K = 10;
  const std::vector<double> ld = f.read<double>("mix.labels");
  const std::vector<int> labels(ld.begin(), ld.end());
  for (const std::string& name : words(f.metadata().at("mix_cases"))) {
    INFO(name);
    const std::vector<double> p = f.read<double>("mix." + name + ".params");  // lam, cutmix, cy, cx, lam_out
    mae::MixParams mp;
    if (p[1] != 0)
      mp = mae::cutmix_box(H, W, p[0], static_cast<Index>(p[2]), static_cast<Index>(p[3]));
    else
      mp.lam = p[0];
    CHECK(mp.lam == p[4]);  // correct_lam: 1 - box area / image area
    std::vector<float> ours = x;
    mae::apply_mix(mp, ours.data(), N, C, H, W);
    CHECK(ours == f.read<float>("mix." + name + ".x"));  // bitwise: the same float operations
    std::vector<float> t(static_cast<std::size_t>(N * K), -1.0f);
    mae::mix_targets(t.data(), labels.data(), N, K, mp.lam, 0.1);
    const std::vector<float> want = f.read<float>("mix." + name + ".target");
    for (std::size_t i = 0; i < t.size(); ++i) CHECK(t[i] == doctest::Approx(want[i]).epsilon(1e-6));
  }
  std::vector<float> odd(static_cast<std::size_t>(3 * C * H * W));
  CHECK_THROWS_WITH_AS(mae::apply_mix(mae::MixParams{0.5}, odd.data(), 3, C, H, W),
                       doctest::Contains("even batch size"), mae::Error);
}

TEST_CASE("Mixup draws: Beta(alpha, alpha) lam, the cutmix switch, the mixing probability") {
  mae::Rng r(7);
  for (double a : {0.8, 1.0, 0.3, 2.5}) {
    INFO("alpha ", a);
    const int n = 200000;
    double s = 0, s2 = 0;
    for (int i = 0; i < n; ++i) {
      const double v = mae::beta_sample(r, a, a);
      REQUIRE((v >= 0 && v <= 1));
      s += v, s2 += v * v;
    }
    // Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)); the variance's standard error is below
    // sqrt(E[(x - 1/2)^4] / n) <= sqrt(var / 4n)
    const double mean = s / n, var = s2 / n - mean * mean, want_var = 1.0 / (4 * (2 * a + 1));
    INFO("mean ", mean, " variance ", var, " (want ", want_var, ")");
    CHECK(std::abs(mean - 0.5) < 5 * std::sqrt(want_var / n));
    CHECK(std::abs(var - want_var) < 5 * std::sqrt(want_var / (4.0 * n)));
  }
  mae::MixupOptions o;  // mixup 0.8, cutmix 1.0, prob 1, switch 0.5
  o.prob = 0.8;
  const int n = 40000;
  int cut = 0, mixed = 0;
  double cut_area = 0;
  for (int i = 0; i < n; ++i) {
    const mae::MixParams p = mae::draw_mix(r, o, 28, 28);
    if (p.lam == 1.0 && !p.cutmix) continue;
    ++mixed;
    if (p.cutmix) {
      ++cut;
      CHECK(p.lam == doctest::Approx(1.0 - double((p.y1 - p.y0) * (p.x1 - p.x0)) / (28 * 28)));
      cut_area += 1 - p.lam;
    }
  }
  CHECK(std::abs(mixed - 0.8 * n) < 5 * std::sqrt(n * 0.16));
  CHECK(std::abs(cut - 0.5 * mixed) < 5 * std::sqrt(mixed * 0.25));
  // a box of side sqrt(1 - lam), lam ~ U(0, 1), clipped at the border: mean area below 1/2
  CHECK(cut_area / cut > 0.25);
  CHECK(cut_area / cut < 0.5);
  mae::MixupOptions off{0.0, 0.0};
  CHECK_FALSE(off.active());
  CHECK(mae::draw_mix(r, off, 28, 28).lam == 1.0);
  mae::MixupOptions bad;
  bad.switch_prob = 1.5;
  CHECK_THROWS_AS(bad.check(), mae::Error);
}

TEST_CASE("random erasing: probability, box area and aspect, N(0, 1) fill, nothing outside the box") {
  const Index C = 3, H = 28, W = 24;
  mae::RandomErasingOptions o;  // 0.25, area [0.02, 1/3], aspect [0.3, 1/0.3]
  mae::Rng r(11);
  const int n = 20000;
  int erased = 0;
  double log_aspect = 0;
  double fill_sum = 0, fill_sq = 0, cnt = 0;
  std::vector<float> img(static_cast<std::size_t>(C * H * W));
  for (int i = 0; i < n; ++i) {
    std::fill(img.begin(), img.end(), 7.0f);
    mae::random_erasing(img.data(), C, H, W, r, o);
    Index y0 = H, y1 = -1, x0 = W, x1 = -1, changed = 0;
    for (Index c = 0; c < C; ++c)
      for (Index y = 0; y < H; ++y)
        for (Index x = 0; x < W; ++x) {
          const float v = img[static_cast<std::size_t>((c * H + y) * W + x)];
          if (v == 7.0f) continue;
          ++changed;
          y0 = std::min(y0, y), y1 = std::max(y1, y), x0 = std::min(x0, x), x1 = std::max(x1, x);
          fill_sum += v, fill_sq += double(v) * v, cnt += 1;
        }
    if (!changed) continue;
    ++erased;
    const Index h = y1 - y0 + 1, w = x1 - x0 + 1;
    CHECK(changed == C * h * w);  // one box, the same in every channel
    // round(sqrt(area)) sides: the area within the rounding of [0.02, 1/3] x H W
    CHECK(double(h * w) <= (std::sqrt(H * W / 3.0 * (1 / 0.3)) + 0.5) * (std::sqrt(H * W / 3.0 * 0.3) + 0.5));
    CHECK(h < H);
    CHECK(w < W);
    // aspect a = exp(U(log 0.3, log 1/0.3)), h = round(sqrt(area a)), w = round(sqrt(area / a)):
    // (h - 1/2) / (w + 1/2) <= a <= 1 / 0.3, and the same for w / h
    CHECK((h - 0.5) / (w + 0.5) <= 1 / 0.3);
    CHECK((w - 0.5) / (h + 0.5) <= 1 / 0.3);
    log_aspect += std::log(double(h) / double(w));
  }
  CHECK(std::abs(log_aspect / erased) < 0.05);  // symmetric in log
  CHECK(std::abs(erased - 0.25 * n) < 5 * std::sqrt(n * 0.25 * 0.75));
  const double mean = fill_sum / cnt, var = fill_sq / cnt - mean * mean;  // N(0, 1): 5 standard errors
  INFO("fill mean ", mean, " variance ", var, " over ", cnt, " values");
  CHECK(std::abs(mean) < 5 / std::sqrt(cnt));
  CHECK(std::abs(var - 1) < 5 * std::sqrt(2 / cnt));
}


TEST_CASE("RandAugment's spec() reads back as the same options") {
  for (const char* s : {"rand-m9-mstd0.5-inc1", "rand-n3-m7-p0.8-mmax12", "rand-m0.1"}) {
    const auto o = mae::RandAugmentOptions::parse(s);
    const auto back = mae::RandAugmentOptions::parse(o.spec());
    INFO(s, " -> ", o.spec());
    CHECK(back.num_ops == o.num_ops);
    CHECK(back.magnitude == o.magnitude);
    CHECK(back.magnitude_std == o.magnitude_std);
    CHECK(back.magnitude_max == o.magnitude_max);
    CHECK(back.prob == o.prob);
    CHECK(back.increasing == o.increasing);
  }
}
