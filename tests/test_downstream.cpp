// What the `mae` program builds on: starting points at another resolution (the official
// interpolate_pos_embed against PyTorch, an encoder into a classifier or a fresh MAE of
// another image size), the evaluation transform's crop box, the classification report and
// the weighted k-NN vote, and the image folder's refusals.
#include "test_util.hpp"

#include <mae/data.hpp>
#include <mae/metrics.hpp>

#include <stb/stb_image_write.h>

#include <cstring>
#include <sstream>

using mae::Index;
namespace fs = std::filesystem;

namespace {
std::string fixture(const std::string& name) { return std::string(MAE_FIXTURE_DIR) + "/" + name + ".safetensors"; }

void write_gray_png(const fs::path& p, int w, int h, unsigned char value) {
  std::vector<unsigned char> px(static_cast<std::size_t>(w * h), value);
  REQUIRE(stbi_write_png(p.string().c_str(), w, h, 1, px.data(), w));
}
}  // namespace

TEST_CASE("interpolate_pos_embed equals the official one (torch bicubic, align_corners=False) to 1e-6") {
  // The fixture: float32 tables, interpolated by PyTorch in float64 (the exact result) and in
  // float32 (rounded at every step: up to ~1e-6 off the exact result itself).
  const mae::safetensors::File f(fixture("interpolate_pos_embed"));
  std::istringstream cases(f.metadata().at("cases"));
  std::string c;
  int n = 0;
  while (cases >> c) {
    Index g0 = 0, g1 = 0, d = 0;
    char comma;
    std::istringstream(c) >> g0 >> comma >> g1 >> comma >> d;
    const std::string key = std::to_string(g0) + "." + std::to_string(g1) + "." + std::to_string(d);
    std::vector<std::int64_t> s0, s1;
    const std::vector<double> src = f.read<double>("src." + key, &s0), exact = f.read<double>("dst." + key, &s1);
    const std::vector<double> torch32 = f.read<double>("dst_float32." + key);
    REQUIRE(s1 == std::vector<std::int64_t>{1, 1 + g1 * g1, d});
    std::vector<double> ours(exact.size(), -7.0);  // in double: the same arithmetic as PyTorch's float64
    mae::interpolate_pos_embed(ours.data(), g1, src.data(), g0, d);
    const std::vector<float> src_f(src.begin(), src.end());
    std::vector<float> ours_f(exact.size(), -7.0f);  // from a float32 checkpoint, as load_encoder does
    mae::interpolate_pos_embed(ours_f.data(), g1, src_f.data(), g0, d);
    double worst = 0, worst_f = 0, worst_torch32 = 0;
    for (std::size_t i = 0; i < exact.size(); ++i) {
      worst = std::max(worst, std::abs(ours[i] - exact[i]));
      worst_f = std::max(worst_f, std::abs(double(ours_f[i]) - exact[i]));
      worst_torch32 = std::max(worst_torch32, std::abs(double(ours_f[i]) - torch32[i]));
    }
    INFO(key, ": |ours - torch| in double ", worst, ", from float ", worst_f, " (torch in float32: ", worst_torch32,
         ")");
    CHECK(worst <= 1e-12);
    CHECK(worst_f <= 1e-6);
    CHECK(worst_torch32 <= 2e-6);  // both round the same exact values to float
    CHECK(ours[3] == src[3]);      // the cls row, copied
    ++n;
  }
  CHECK(n == 6);
}

TEST_CASE("an encoder of another image size: into a classifier (pos_embed interpolated) and a fresh MAE") {
  using Small = mae::Config<8, 2, 1, 8, 2, 2, 8, 1, 2, 4, float>;   // grid 4
  using Large = mae::Config<12, 2, 1, 8, 2, 2, 8, 1, 2, 4, float>;  // grid 6, same patch and widths
  mae::MaskedAutoencoder<Small> small(typename mae::MaskedAutoencoder<Small>::Options{false, 9});
  const auto dir = mae_test::scratch_dir("other_resolution");
  const std::string path = (dir / "small.safetensors").string();
  small.save(path);
  const auto& sp = small.parameters();

  // the classifier: blocks as saved, pos_embed the official interpolation of the saved table
  using Clf = mae::VisionTransformer<Large>;
  typename Clf::Options o;
  o.num_classes = 3, o.global_pool = false;
  Clf clf(o);
  CHECK(clf.load_encoder(path) == 4);
  std::vector<float> expected(37 * 8);
  mae::interpolate_pos_embed(expected.data(), 6, small.pos_embed(), 4, 8);
  CHECK(std::memcmp(clf.parameters().ptr("pos_embed"), expected.data(), expected.size() * sizeof(float)) == 0);
  for (const char* t : {"blocks.1.attn.qkv.weight", "patch_embed.proj.weight", "cls_token", "norm.weight"})
    CHECK(std::memcmp(clf.parameters().ptr(t), sp.ptr(t), sizeof(float) * 8) == 0);
  std::vector<float> img(2 * 144, 0.3f);
  clf.forward(mae::images(img.data(), 2, 1, 12, 12), nullptr, false);
  CHECK(std::isfinite(clf.logits()(1, 2)));

  // a fresh MAE: the encoder's tensors loaded, its own fixed tables and fresh decoder kept
  using Mae = mae::MaskedAutoencoder<Large>;
  Mae large(typename Mae::Options{false, 3});
  const Mae untouched(typename Mae::Options{false, 3});
  large.load_encoder(path);
  const auto& lp = large.parameters();
  for (const auto& t : lp.tensors()) {
    const bool encoder = t.name.rfind("decoder", 0) != 0 && t.name != "mask_token";
    const float* want = encoder ? sp.ptr(t.name) : untouched.parameters().ptr(t.name);
    INFO(t.name);
    CHECK(std::memcmp(lp.data() + t.offset, want, sizeof(float) * static_cast<std::size_t>(t.size)) == 0);
  }
  CHECK(std::memcmp(large.pos_embed(), untouched.pos_embed(), 37 * 8 * sizeof(float)) == 0);

  // another patch size (or width) cannot be resized: refused, and nothing changes
  using OtherPatch = mae::Config<12, 3, 1, 8, 2, 2, 8, 1, 2, 4, float>;
  mae::VisionTransformer<OtherPatch> other(typename mae::VisionTransformer<OtherPatch>::Options{});
  const std::vector<float> before(other.parameters().data(), other.parameters().data() + other.parameters().size());
  CHECK_THROWS_WITH_AS(other.load_encoder(path), doctest::Contains("another configuration"), mae::Error);
  CHECK(std::equal(before.begin(), before.end(), other.parameters().data()));
  mae::MaskedAutoencoder<OtherPatch> other_mae(typename mae::MaskedAutoencoder<OtherPatch>::Options{});
  CHECK_THROWS_WITH_AS(other_mae.load_encoder(path), doctest::Contains("another configuration"), mae::Error);
  // but a whole MAE checkpoint still needs its own image size
  CHECK_THROWS_WITH_AS(large.load(path), doctest::Contains("another configuration"), mae::Error);
}

TEST_CASE("evaluation crop box: torchvision Resize(int(S / crop_pct)) then CenterCrop(S)") {
  // square: 32 -> resize to int(28 / 0.875) = 32, crop 28 from offset 2
  auto b = mae::center_crop_box(32, 32, 28, 0.875);
  CHECK(b[0] == 2.0);
  CHECK(b[1] == 2.0);
  CHECK(b[2] == 28.0);
  CHECK(b[3] == 28.0);
  // 40 high, 36 wide: the shorter side to 32, the longer int(32 * 40 / 36) = 35; crop top
  // round(3.5) = 4, left 2; in source pixels scaled by 36 / 32 and 40 / 35
  b = mae::center_crop_box(40, 36, 28, 0.875);
  CHECK(b[0] == doctest::Approx(4.0 * 40 / 35));
  CHECK(b[1] == doctest::Approx(2.0 * 36 / 32));
  CHECK(b[2] == doctest::Approx(28.0 * 40 / 35));
  CHECK(b[3] == doctest::Approx(28.0 * 36 / 32));
  // crop_pct 1: the whole square image
  b = mae::center_crop_box(100, 100, 64, 1.0);
  CHECK(b[0] == 0.0);
  CHECK(b[1] == 0.0);
  CHECK(b[2] == 100.0);
  CHECK(b[3] == 100.0);
  CHECK_THROWS_AS(mae::center_crop_box(10, 10, 8, 0.0), mae::Error);
  // resampling the box equals resizing the whole image and cropping, on a linear ramp
  // (upsampled: bicubic reproduces linear functions exactly away from the borders)
  const Index H = 20, W = 18, S = 28;  // the shorter side to 32, the longer int(32 * 20 / 18) = 35
  std::vector<float> src(H * W), out(S * S);
  for (Index y = 0; y < H; ++y)
    for (Index x = 0; x < W; ++x) src[y * W + x] = static_cast<float>(0.01 * y + 0.02 * x);
  b = mae::center_crop_box(H, W, S, 0.875);
  mae::resize_bicubic(out.data(), S, S, src.data(), 1, H, W, b[0], b[1], b[2], b[3]);
  const double sy = 20.0 / 35, sx = 18.0 / 32;  // output pixel (i, j) is resized pixel (i + 4, j + 2)
  for (Index i = 4; i < S - 4; ++i)
    for (Index j = 4; j < S - 4; ++j) {
      const double y = (i + 4 + 0.5) * sy - 0.5, x = (j + 2 + 0.5) * sx - 0.5;
      CHECK(out[i * S + j] == doctest::Approx(0.01 * y + 0.02 * x).epsilon(1e-5));
    }
}

TEST_CASE("classification report: top-1, top-5, per class, confusion, mean loss") {
  mae::ClassificationReport r(6);
  const float a[6] = {0.9f, 0.1f, 0, 0, 0, 0};              // predicts 0
  const float b[6] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};  // predicts 5; class 0 ranks 6th
  const float c[6] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};  // class 1 ranks 5th
  r.add(a, 0, 1.0), r.add(b, 0, 2.0), r.add(c, 1, 3.0);
  CHECK(r.count() == 3);
  CHECK(r.top1() == doctest::Approx(1.0 / 3));
  CHECK(r.top5() == doctest::Approx(2.0 / 3));
  CHECK(r.mean_loss() == doctest::Approx(2.0));
  CHECK(r.confusion(0, 0) == 1);
  CHECK(r.confusion(0, 5) == 1);
  CHECK(r.confusion(1, 5) == 1);
  CHECK(r.class_count(0) == 2);
  CHECK(r.class_accuracy(0) == 0.5);
  CHECK(r.class_accuracy(1) == 0.0);
  CHECK(std::isnan(r.class_accuracy(2)));
  const float tie[6] = {0.5f, 0.5f, 0, 0, 0, 0};  // a tie goes to the first class
  r.add(tie, 1);
  CHECK(r.confusion(1, 0) == 1);
  CHECK_THROWS_AS(r.add(a, 6), mae::Error);
}

TEST_CASE("weighted k-NN: the neighbours' labels vote with exp(cosine / T)") {
  // 2-D features: class 0 along +x, class 1 along +y, class 2 along -x (scaled: cosine ignores length)
  const std::vector<float> train{1, 0.1f, 2, -0.1f, 0.1f, 1, -0.1f, 3, -1, 0.05f, -2, 0};
  const std::vector<int> labels{0, 0, 1, 1, 2, 2};
  const std::vector<float> q{5, 1, 0.2f, 1, -1, -0.1f, 1, 1.05f};
  const std::vector<int> ql{0, 1, 2, 1};
  auto r = mae::knn_classify(train.data(), labels.data(), 6, q.data(), ql.data(), 4, 2, 3, /*k=*/2, 0.07);
  CHECK(r.top1() == 1.0);
  // k = all: at a low temperature the most similar neighbours still decide
  r = mae::knn_classify(train.data(), labels.data(), 6, q.data(), ql.data(), 4, 2, 3, 6, 0.07);
  CHECK(r.confusion(0, 0) == 1);
  // the query (1, 1.05) sits between +x and +y: k = 1 takes the single nearest (class 1)
  r = mae::knn_classify(train.data(), labels.data(), 6, q.data() + 6, ql.data() + 3, 1, 2, 3, 1, 0.07);
  CHECK(r.confusion(1, 1) == 1);
  CHECK_THROWS_AS(mae::knn_classify(train.data(), labels.data(), 6, q.data(), ql.data(), 4, 2, 3, 0), mae::Error);
}

TEST_CASE("image folder: classes required, the same in train and val, sizes checked at the scan, loops named") {
  const fs::path d = mae_test::scratch_dir("folder_rules");
  fs::create_directories(d / "train" / "a"), fs::create_directories(d / "train" / "b");
  fs::create_directories(d / "val" / "a"), fs::create_directories(d / "val" / "c");
  for (const char* p : {"train/a/1.png", "train/b/2.png", "val/a/3.png", "val/c/4.png"}) write_gray_png(d / p, 6, 5, 7);
  const mae::ImageFolder train((d / "train").string(), {1}), val((d / "val").string(), {1});
  CHECK(train.class_names() == std::vector<std::string>{"a", "b"});
  CHECK(train.item_name(1) == (d / "train" / "b" / "2.png").string());
  train.require_classes();
  CHECK_THROWS_WITH_AS(mae::require_same_classes(train, val),
                       doctest::Contains(("only in " + (d / "val").string() + ": 'c'").c_str()), mae::Error);
  // an image beside the class directories, or a single class
  write_gray_png(d / "train" / "loose.png", 6, 5, 7);
  CHECK_THROWS_WITH_AS(mae::ImageFolder((d / "train").string(), {1}).require_classes(),
                       doctest::Contains("loose.png: an image directly in"), mae::Error);
  fs::create_directories(d / "one" / "a");
  write_gray_png(d / "one" / "a" / "1.png", 6, 5, 7);
  CHECK_THROWS_WITH_AS(mae::ImageFolder((d / "one").string(), {1}).require_classes(),
                       doctest::Contains("needs at least two"), mae::Error);
  // the pixel limit and an empty file stop the scan, naming the file (nothing is decoded yet)
  CHECK_THROWS_WITH_AS(mae::ImageFolder((d / "val").string(), {1, 0, /*max_pixels=*/29}),
                       doctest::Contains("3.png: 6x5 pixels, over the limit of 29"), mae::Error);
  mae::ImageFolder((d / "val").string(), {1, 0, 30});
  std::ofstream(d / "val" / "c" / "5.png").flush();
  CHECK_THROWS_WITH_AS(mae::ImageFolder((d / "val").string(), {1}), doctest::Contains("5.png: empty file (0 bytes)"),
                       mae::Error);
  // a 16-bit PGM (the input tests/fuzz/fuzz_image found overflowing stb's reader) is refused
  const fs::path pnm = mae_test::scratch_dir("folder_pnm");
  fs::create_directories(pnm / "a");
  std::ofstream(pnm / "a" / "wide.pgm", std::ios::binary)
      << std::string("P5\n45\n545\n545\x03\0\0\0\x50", 17) << std::string(16, '\0');
  CHECK_THROWS_WITH_AS(mae::ImageFolder(pnm.string(), {3}), doctest::Contains("wide.pgm: a 16-bit PGM/PPM image"),
                       mae::Error);
  fs::remove(pnm / "a" / "wide.pgm");  // a header number stb's int parser overflows on
  std::ofstream(pnm / "a" / "long.pgm", std::ios::binary) << "P5\n1111111111 2\n255\n" << std::string(8, '\0');
  CHECK_THROWS_WITH_AS(mae::ImageFolder(pnm.string(), {1}), doctest::Contains("long.pgm: corrupt PGM/PPM header"),
                       mae::Error);
  // ... also when a comment follows a number directly, as stb reads it (found by fuzz_image)
  std::ofstream(pnm / "a" / "long.pgm", std::ios::binary) << "P5\n1#xy\n\v12222222222 2\n255\n" << std::string(8, '\0');
  CHECK_THROWS_WITH_AS(mae::ImageFolder(pnm.string(), {1}), doctest::Contains("long.pgm: corrupt PGM/PPM header"),
                       mae::Error);
  // a JPEG Huffman table of more than 256 codes (stb copied them into 256 places): JPEGs go
  // to libjpeg-turbo, which refuses it
  fs::remove(pnm / "a" / "long.pgm");
  std::string jpeg("\xff\xd8\xff\xc4\x01\x00\x00", 7);
  jpeg += std::string(16, '\x12');  // 16 counts of 18 = 288 codes
  std::ofstream(pnm / "a" / "dht.jpg", std::ios::binary) << jpeg;
  CHECK_THROWS_WITH_AS(mae::ImageFolder(pnm.string(), {3}), doctest::Contains("dht.jpg: unreadable JPEG ("),
                       mae::Error);
  // a directory symlink loop is an error naming the folder, not a hang
  const fs::path loop = mae_test::scratch_dir("folder_loop");
  fs::create_directories(loop / "x");
  write_gray_png(loop / "x" / "1.png", 4, 4, 1);
  fs::create_directory_symlink(loop, loop / "x" / "back");
  CHECK_THROWS_WITH_AS(mae::ImageFolder(loop.string(), {1}),
                       doctest::Contains(("image folder '" + loop.string()).c_str()), mae::Error);
}
