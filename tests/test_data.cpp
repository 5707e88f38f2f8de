// data/, datasets/ and figures/: Fashion-MNIST IDX/gzip reading and its errors, image
// folders and their rules, decoding, resize, the evaluation crop, augmentation, shards,
// figures.
#include "test_util.hpp"

#include <mae/data.hpp>
#include <nlohmann/json.hpp>

#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

using mae::Index;
namespace fs = std::filesystem;

namespace {
using mae_test::scratch_dir;
using mae_test::slurp;
using mae_test::spit;
void write_gz(const fs::path& p, const std::string& bytes) {
  gzFile f = gzopen(p.string().c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  gzclose(f);
}
std::string be32(std::uint32_t v) {
  return std::string{char(v >> 24), char((v >> 16) & 255), char((v >> 8) & 255), char(v & 255)};
}
// A small Fashion-MNIST-like directory: n images of 4x4 with pixel value 16*i, labels i % 10.
fs::path make_idx_dir(const std::string& name, Index n = 3) {
  const fs::path d = scratch_dir(name);
  std::string img = be32(0x803) + be32(static_cast<std::uint32_t>(n)) + be32(4) + be32(4),
              lab = be32(0x801) + be32(static_cast<std::uint32_t>(n));
  for (Index i = 0; i < n; ++i) img += std::string(16, char(16 * i)), lab += char(i % 10);
  for (const char* split : {"train", "t10k"}) {
    write_gz(d / (std::string(split) + "-images-idx3-ubyte.gz"), img);
    write_gz(d / (std::string(split) + "-labels-idx1-ubyte.gz"), lab);
  }
  return d;
}

void write_gray_png_file(const fs::path& p, int w, int h, unsigned char value) {
  std::vector<unsigned char> px(static_cast<std::size_t>(w * h), value);
  REQUIRE(stbi_write_png(p.string().c_str(), w, h, 1, px.data(), w));
}
}  // namespace

TEST_CASE("Fashion-MNIST IDX files are read through zlib") {
  const fs::path d = make_idx_dir("idx_ok");
  mae::FashionMnist ds(d.string(), "train");
  CHECK(ds.size() == 3);
  CHECK(ds.height(0) == 4);
  float px[16];
  ds.load(2, px);
  CHECK(px[5] == doctest::Approx(32.0 / 255.0));
  CHECK(ds.label(2) == 2);
}

TEST_CASE("bad Fashion-MNIST input is rejected with a message naming the file") {
  SUBCASE("missing directory names the Debian package") {
    CHECK_THROWS_WITH_AS(mae::FashionMnist("/nonexistent/fmnist"),
                         doctest::Contains("'/nonexistent/fmnist' is not a directory. Install Debian's package "
                                           "(apt-get install dataset-fashion-mnist)"),
                         mae::Error);
  }
  SUBCASE("missing file") {
    const fs::path d = make_idx_dir("idx_missing");
    fs::remove(d / "train-labels-idx1-ubyte.gz");
    CHECK_THROWS_WITH_AS(mae::FashionMnist(d.string()), doctest::Contains("train-labels-idx1-ubyte.gz: no such file"),
                         mae::Error);
  }
  SUBCASE("truncated gzip") {
    const fs::path d = make_idx_dir("idx_trunc", 200);
    const fs::path f = d / "train-images-idx3-ubyte.gz";
    const std::string b = slurp(f);
    spit(f, b.substr(0, b.size() / 2));
    CHECK_THROWS_WITH_AS(mae::FashionMnist(d.string()), doctest::Contains("train-images-idx3-ubyte.gz"), mae::Error);
  }
  SUBCASE("corrupt gzip") {
    const fs::path d = make_idx_dir("idx_corrupt", 200);
    const fs::path f = d / "train-images-idx3-ubyte.gz";
    std::string b = slurp(f);
    for (std::size_t i = 20; i < 40; ++i) b[i] = static_cast<char>(b[i] ^ 0x5a);
    spit(f, b);
    CHECK_THROWS_WITH_AS(mae::FashionMnist(d.string()), doctest::Contains("train-images-idx3-ubyte.gz"), mae::Error);
  }
  SUBCASE("wrong magic number") {
    const fs::path d = make_idx_dir("idx_magic");
    write_gz(d / "train-images-idx3-ubyte.gz", be32(0x801) + be32(3) + std::string(3, '\0'));
    CHECK_THROWS_WITH_AS(mae::FashionMnist(d.string()), doctest::Contains("wrong magic number 0x00000801"), mae::Error);
  }
  SUBCASE("fewer bytes than the header promises") {
    const fs::path d = make_idx_dir("idx_short");
    write_gz(d / "train-images-idx3-ubyte.gz", be32(0x803) + be32(3) + be32(4) + be32(4) + std::string(40, '\0'));
    CHECK_THROWS_WITH_AS(mae::FashionMnist(d.string()), doctest::Contains("the header promises 48"), mae::Error);
  }
  SUBCASE("dimensions whose product overflows (16 images of 2^30 x 2^30, no data)") {
    const fs::path d = make_idx_dir("idx_overflow");
    write_gz(d / "train-images-idx3-ubyte.gz", be32(0x803) + be32(16) + be32(1u << 30) + be32(1u << 30));
    CHECK_THROWS_WITH_AS(mae::FashionMnist(d.string()), doctest::Contains("the dimensions' product overflows"),
                         mae::Error);
  }
  SUBCASE("a header promising terabytes without the data costs nothing") {
    const fs::path d = make_idx_dir("idx_huge");
    write_gz(d / "train-images-idx3-ubyte.gz", be32(0x803) + be32(1u << 20) + be32(1u << 10) + be32(1u << 10));
    CHECK_THROWS_WITH_AS(mae::FashionMnist(d.string()),
                         doctest::Contains("0 data bytes, the header promises 1099511627776"), mae::Error);
  }
  SUBCASE("more data than the header promises: inflation stops one byte past it") {
    const fs::path d = make_idx_dir("idx_bomb");
    write_gz(d / "train-images-idx3-ubyte.gz", be32(0x803) + be32(3) + be32(4) + be32(4) + std::string(1 << 20, '\0'));
    CHECK_THROWS_WITH_AS(mae::FashionMnist(d.string()),
                         doctest::Contains("more than 49 data bytes, the header promises 48"), mae::Error);
  }
  SUBCASE("labels and images disagree") {
    const fs::path d = make_idx_dir("idx_labels");
    write_gz(d / "train-labels-idx1-ubyte.gz", be32(0x801) + be32(2) + std::string(2, '\1'));
    CHECK_THROWS_WITH_AS(mae::FashionMnist(d.string()), doctest::Contains("2 labels for 3 images"), mae::Error);
  }
}

TEST_CASE("the real Fashion-MNIST, when Debian's package is installed") {
  if (!fs::exists(std::string(mae::FashionMnist::kDefaultDir) + "/t10k-images-idx3-ubyte.gz")) {
    MESSAGE("dataset-fashion-mnist is not installed: skipped");
    return;
  }
  mae::FashionMnist test(mae::FashionMnist::kDefaultDir, "t10k");
  CHECK(test.size() == 10000);
  std::vector<double> mean, sd;
  const int before = mae::max_threads();
  mae::set_num_threads(1);
  mae::dataset_mean_std(test, mean, sd);
  CHECK(mean[0] == doctest::Approx(0.286).epsilon(0.02));  // the known statistics of Fashion-MNIST
  CHECK(sd[0] == doctest::Approx(0.353).epsilon(0.02));
  // decoded in parallel, summed in image order: the same bits for any thread count (the
  // statistics are stored in checkpoints and compared on resume)
  std::vector<double> mean2, sd2;
  mae::set_num_threads(2);
  mae::dataset_mean_std(test, mean2, sd2);
  mae::set_num_threads(before);
  CHECK(mean2 == mean);
  CHECK(sd2 == sd);
}

TEST_CASE("image folder: PNG and JPEG files, converted, labelled by subdirectory; bad files named") {
  const fs::path d = scratch_dir("folder");
  fs::create_directories(d / "cats"), fs::create_directories(d / "dogs");
  std::vector<unsigned char> rgb(20 * 10 * 3);
  for (std::size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<unsigned char>(i % 3 == 0 ? 255 : 0);  // red
  REQUIRE(stbi_write_png((d / "cats" / "a.png").string().c_str(), 20, 10, 3, rgb.data(), 60));
  REQUIRE(stbi_write_jpg((d / "dogs" / "b.jpg").string().c_str(), 20, 10, 3, rgb.data(), 95));
  spit(d / "notes.txt", "not an image");
  mae::ImageFolder f(d.string(), {3});
  REQUIRE(f.size() == 2);
  CHECK(f.label(0) == 0);
  CHECK(f.label(1) == 1);
  CHECK(f.height(0) == 10);
  CHECK(f.width(0) == 20);
  std::vector<float> px(3 * 10 * 20);
  f.load(0, px.data());
  CHECK(px[0] == 1.0f);                    // red channel
  CHECK(px[200] == 0.0f);                  // green channel
  mae::ImageFolder gray(d.string(), {1});  // converted to one channel
  gray.load(0, px.data());
  CHECK(px[0] == 76.0f / 255.0f);                           // PIL's luminance of pure red
  mae::ImageFolder small(d.string(), {3, /*max_side=*/5});  // shrunk: shorter side 5
  CHECK(small.height(0) == 5);
  CHECK(small.width(0) == 10);
  spit(d / "dogs" / "broken.png", std::string("\x89PNG\r\n\x1a\n", 8) + "garbage");
  CHECK_THROWS_WITH_AS(mae::ImageFolder(d.string(), {3}), doctest::Contains("broken.png: unreadable PNG"), mae::Error);
  CHECK_THROWS_WITH_AS(mae::ImageFolder(scratch_dir("empty").string(), {3}), doctest::Contains("holds no"), mae::Error);
}

TEST_CASE("image decoding: the format by content, PIL's channel conversion, corrupt files named") {
  const fs::path d = scratch_dir("decode");
  // three RGB pixels with alpha; PIL's Image.convert('L') of them is [76, 124, 31]
  // (python3-pil 9.4: Image.new('RGB', (3, 1)), putpixel, convert('L'))
  const unsigned char rgba[12] = {255, 0, 0, 255, 10, 200, 30, 0, 1, 2, 255, 128};
  const std::string png = (d / "a.png").string(), named_jpg = (d / "png_named.jpg").string();
  REQUIRE(stbi_write_png(png.c_str(), 3, 1, 4, rgba, 12));
  fs::copy_file(png, named_jpg);
  mae::ImageSize s;
  for (const std::string& p : {png, named_jpg}) {  // the name's extension does not matter
    CHECK(mae::image_format(p) == mae::ImageFormat::png);
    CHECK(mae::decode_image(p, 1, &s) == std::vector<unsigned char>{76, 124, 31});
    CHECK(s.width == 3);
    CHECK(s.height == 1);
    // alpha dropped, not composited: the fully transparent pixel keeps its colour
    CHECK(mae::decode_image(p, 3, &s) == std::vector<unsigned char>{255, 0, 0, 10, 200, 30, 1, 2, 255});
  }
  const unsigned char g[2] = {7, 250};  // gray to RGB: copied
  const std::string gray = (d / "g.bmp").string();
  REQUIRE(stbi_write_bmp(gray.c_str(), 2, 1, 1, g));  // BMP: stb
  CHECK(mae::image_format(gray) == mae::ImageFormat::bmp);
  CHECK(mae::decode_image(gray, 3, &s) == std::vector<unsigned char>{7, 7, 7, 250, 250, 250});
  CHECK(mae::decode_image(gray, 1, &s) == std::vector<unsigned char>{7, 250});
  // JPEG: libjpeg-turbo; a flat colour survives quality 95 within a few levels
  std::vector<unsigned char> flat(16 * 16 * 3);
  for (std::size_t i = 0; i < flat.size(); ++i) flat[i] = static_cast<unsigned char>(i % 3 == 1 ? 200 : 40);
  const std::string jpg = (d / "b.jpg").string();
  REQUIRE(stbi_write_jpg(jpg.c_str(), 16, 16, 3, flat.data(), 95));
  CHECK(mae::image_format(jpg) == mae::ImageFormat::jpeg);
  CHECK(mae::read_image_size(jpg).width == 16);
  const auto px = mae::decode_image(jpg, 3, &s);
  REQUIRE(px.size() == flat.size());
  for (std::size_t i = 0; i < px.size(); ++i) CHECK(std::abs(int(px[i]) - int(flat[i])) <= 3);
  // a file that changed size since it was read is refused
  const mae::ImageSize other{15, 16};
  CHECK_THROWS_WITH_AS(mae::decode_image(jpg, 3, &s, &other), doctest::Contains("b.jpg: the image changed"),
                       mae::Error);
  // truncated and corrupt files: an error naming the file (a JPEG's warning is an error)
  const std::string bytes = slurp(jpg), pbytes = slurp(png);
  spit(d / "cut.jpg", bytes.substr(0, bytes.size() * 2 / 3));
  CHECK_THROWS_WITH_AS(mae::decode_image((d / "cut.jpg").string(), 3, &s),
                       doctest::Contains("cut.jpg: unreadable JPEG"), mae::Error);
  spit(d / "cut.png", pbytes.substr(0, pbytes.size() - 20));
  CHECK_THROWS_WITH_AS(mae::decode_image((d / "cut.png").string(), 3, &s), doctest::Contains("cut.png: unreadable PNG"),
                       mae::Error);
  std::string flipped = pbytes;
  flipped[flipped.size() / 2] = static_cast<char>(flipped[flipped.size() / 2] ^ 0x40);  // a CRC mismatch
  spit(d / "crc.png", flipped);
  CHECK_THROWS_WITH_AS(mae::decode_image((d / "crc.png").string(), 3, &s), doctest::Contains("crc.png: unreadable PNG"),
                       mae::Error);
  spit(d / "x.tga", std::string("\0\0\2\0\0\0\0\0\0\0\0\0\1\0\1\0\x18\0\1\2\3", 21));
  CHECK_THROWS_WITH_AS(mae::read_image_size((d / "x.tga").string()),
                       doctest::Contains("x.tga: unreadable image (not a PNG, JPEG, WebP, TIFF, BMP, GIF or PGM/PPM"),
                       mae::Error);
  // an image deleted after the scan (mid-run): the message says why it cannot be opened
  CHECK_THROWS_WITH_AS(mae::decode_image((d / "gone.png").string(), 3, &s),
                       doctest::Contains("gone.png: cannot open (No such file or directory)"), mae::Error);
}

// tests/fixtures/images (tests/make_image_fixtures.py): pictures written by PIL (python3-pil
// 9.4) in the formats people keep, and PIL's own decoded pixels, convert('RGB') and
// convert('L'); every one must decode exactly (manifest.json's bound, 0 for all; where mae
// differs from PIL on purpose, 16-bit gray, the expected pixels are the high bytes).
TEST_CASE("formats: PNG, JPEG, WebP and TIFF in every layout decode to PIL's pixels") {
  const fs::path dir = fs::path(MAE_FIXTURE_DIR) / "images";
  const auto manifest = nlohmann::json::parse(slurp(dir / "manifest.json"));
  REQUIRE(manifest.size() >= 24);
  std::set<std::string> kinds;
  for (const auto& m : manifest) {
    const std::string file = m.at("file");
    const fs::path stem = dir / fs::path(file).stem();
    INFO(file << " (PIL mode " << m.at("pil_mode").get<std::string>() << ")");
    kinds.insert(file.substr(0, file.find('_')));
    for (int channels : {3, 1}) {
      mae::ImageSize s;
      const std::vector<unsigned char> got = mae::decode_image((dir / file).string(), channels, &s);
      CHECK(s.width == m.at("width").get<int>());
      CHECK(s.height == m.at("height").get<int>());
      CHECK(mae::read_image_size((dir / file).string()).width == s.width);
      const std::string want = slurp(stem.string() + (channels == 3 ? ".rgb" : ".l"));
      REQUIRE(got.size() == want.size());
      int worst = 0;
      for (std::size_t i = 0; i < got.size(); ++i)
        worst = std::max(worst, std::abs(int(got[i]) - int(static_cast<unsigned char>(want[i]))));
      INFO(channels << " channels");
      CHECK(worst <= m.at("bound").get<int>());
    }
  }
  CHECK(kinds == std::set<std::string>{"jpeg", "png", "tiff", "webp"});
  // formats by content; truncated or corrupt WebP and TIFF named
  CHECK(mae::image_format((dir / "webp_lossy.webp").string()) == mae::ImageFormat::webp);
  CHECK(mae::image_format((dir / "tiff_rgb8.tif").string()) == mae::ImageFormat::tiff);
  const fs::path d = scratch_dir("formats_bad");
  mae::ImageSize s;
  for (const char* name : {"webp_lossy.webp", "webp_lossless.webp", "tiff_rgb8.tif", "tiff_gray8.tiff"}) {
    const std::string bytes = slurp(dir / name);
    spit(d / name, bytes.substr(0, bytes.size() * 2 / 3));
    const std::string kind = std::string(name).rfind("webp", 0) == 0 ? "WebP" : "TIFF";
    CHECK_THROWS_WITH_AS(mae::decode_image((d / name).string(), 3, &s),
                         doctest::Contains((std::string(name) + ": unreadable " + kind).c_str()), mae::Error);
  }
  spit(d / "header.tif", std::string("II*\0\xff\xff\xff\x0f", 8));  // the first directory past the end
  CHECK_THROWS_WITH_AS(mae::read_image_size((d / "header.tif").string()),
                       doctest::Contains("header.tif: unreadable TIFF"), mae::Error);
  // a folder of them: torchvision's extensions in any case, other files ignored, a file named
  // as an image that does not decode refused by name
  const fs::path f = scratch_dir("formats_folder");
  fs::create_directories(f / "a"), fs::create_directories(f / "b");
  fs::copy_file(dir / "webp_lossy.webp", f / "a" / "1.webp");
  fs::copy_file(dir / "tiff_cmyk.tif", f / "a" / "2.TIF");
  fs::copy_file(dir / "tiff_gray8.tiff", f / "b" / "3.tiff");
  fs::copy_file(dir / "jpeg_cmyk.jpg", f / "b" / "4.JPEG");
  spit(f / "a" / ".DS_Store", "Bud1 not an image");
  spit(f / "b" / "notes.txt", "not an image");
  mae::ImageFolder folder(f.string(), {3});
  CHECK(folder.size() == 4);
  CHECK(folder.class_names() == std::vector<std::string>{"a", "b"});
  spit(f / "b" / "5.webp", std::string("RIFF\x10\0\0\0WEBPVP8 garbage", 23));
  CHECK_THROWS_WITH_AS(mae::ImageFolder(f.string(), {3}), doctest::Contains("5.webp: unreadable WebP"), mae::Error);
  // the headers are read in parallel; the refusal is the first bad file in path order
  for (int i = 0; i < 150; ++i)
    fs::copy_file(dir / "png_gray8.png", f / "b" / ("6_" + std::to_string(1000 + i) + ".png"));
  spit(f / "b" / "7.tif", "II*\0 not a TIFF");
  const int before = mae::max_threads();
  for (int threads : {1, 2}) {
    mae::set_num_threads(threads);
    CHECK_THROWS_WITH_AS(mae::ImageFolder(f.string(), {3}), doctest::Contains("5.webp: unreadable WebP"), mae::Error);
  }
  mae::set_num_threads(before);
}

TEST_CASE("bicubic resize: identity on the same grid, constants stay constant") {
  std::vector<float> src(2 * 6 * 7), dst(src.size());
  mae::Rng r(1);
  for (auto& v : src) v = static_cast<float>(r.uniform());
  mae::resize_bicubic(dst.data(), 6, 7, src.data(), 2, 6, 7, 0, 0, 6, 7);
  for (std::size_t i = 0; i < src.size(); ++i) CHECK(dst[i] == doctest::Approx(src[i]).epsilon(1e-6));
  std::vector<float> c(5 * 9, 0.25f), out(16 * 16);
  mae::resize_bicubic(out.data(), 16, 16, c.data(), 1, 5, 9, 1, 2, 3, 4);  // upsample a box
  for (float v : out) CHECK(v == doctest::Approx(0.25f).epsilon(1e-6));
  mae::resize_bicubic(out.data(), 2, 2, c.data(), 1, 5, 9, 0, 0, 5, 9);  // downsample (antialiased)
  for (int i = 0; i < 4; ++i) CHECK(out[i] == doctest::Approx(0.25f).epsilon(1e-6));
}

TEST_CASE("augmentation: crops inside the image, seeded, the same for any thread count") {
  mae::Rng r(3);
  mae::AugmentOptions o;
  double area_min = 1, area_max = 0;
  for (int i = 0; i < 2000; ++i) {
    const auto b = mae::random_resized_crop_box(28, 28, r, o);
    REQUIRE(b[0] >= 0);
    REQUIRE(b[1] >= 0);
    REQUIRE(b[0] + b[2] <= 28);
    REQUIRE(b[1] + b[3] <= 28);
    const double a = double(b[2] * b[3]) / (28 * 28);
    area_min = std::min(area_min, a), area_max = std::max(area_max, a);
  }
  CHECK(area_min < 0.25);  // scale 0.2 - 1.0
  CHECK(area_min > 0.15);
  CHECK(area_max > 0.9);
  const fs::path d = make_idx_dir("aug", 40);
  mae::FashionMnist ds(d.string());
  mae::AugmentOptions finetune;  // the fine-tuning recipe adds RandAugment and random erasing
  finetune.rand_augment = true;
  finetune.erasing.prob = 0.5;
  auto batch = [&](int threads, const mae::AugmentOptions& aug) {
    mae::set_num_threads(threads);
    mae::BatchLoader l(ds, 8, 10, 99, aug);
    std::vector<float> out(10 * 64);
    l.batch(2, 1, out.data());
    return out;
  };
  const int before = mae::max_threads();
  const auto a = batch(1, {}), b = batch(2, {}), c = batch(2, {});
  const auto fa = batch(1, finetune), fb = batch(2, finetune);
  mae::set_num_threads(before);
  CHECK(a == b);
  CHECK(b == c);
  CHECK(fa == fb);
  CHECK(fa != a);
  mae::BatchLoader l(ds, 8, 10, 99);
  CHECK(l.batches_per_epoch() == 4);
  auto p0 = l.permutation(0), p1 = l.permutation(1);
  CHECK(p0 != p1);
  std::sort(p0.begin(), p0.end());
  for (Index i = 0; i < 40; ++i) CHECK(p0[i] == i);
  CHECK_THROWS_WITH_AS(mae::BatchLoader(ds, 8, 41, 1), doctest::Contains("fewer than one batch"), mae::Error);
}

// DistributedSampler's share (drop_last): rank r of R takes positions r, r + R, ... of each
// epoch's order, so that batch b of every rank together is batch b of one process at R times
// the batch size, image for image and augmentation for augmentation.
TEST_CASE("data-parallel shards: R loaders together give one loader's batches at R times the batch") {
  const fs::path d = make_idx_dir("shard", 42);
  mae::FashionMnist ds(d.string());
  mae::AugmentOptions aug;
  aug.random_resized_crop = true;
  constexpr Index kR = 3, kB = 2, kPix = 64;
  mae::BatchLoader one(ds, 8, kB * kR, 7, aug);
  CHECK(one.batches_per_epoch() == 7);
  for (int rank = 0; rank < kR; ++rank) {
    mae::BatchLoader mine(ds, 8, kB, 7, aug);
    mine.set_shard(rank, kR);
    CHECK(mine.batches_per_epoch() == 7);  // 42 / (2 x 3)
    for (Index epoch : {0, 3})
      for (Index b : {0, 6}) {
        std::vector<float> all(kB * kR * kPix), part(kB * kPix);
        std::vector<int> all_labels(kB * kR), part_labels(kB);
        one.batch(epoch, b, all.data(), all_labels.data());
        mine.batch(epoch, b, part.data(), part_labels.data());
        for (Index k = 0; k < kB; ++k) {
          INFO("rank " << rank << ", epoch " << epoch << ", batch " << b << ", image " << k);
          const Index j = k * kR + rank;  // its place in the one-process batch
          CHECK(mine.position(b, k) == one.position(b, j));
          CHECK(part_labels[k] == all_labels[j]);
          CHECK(std::equal(part.begin() + k * kPix, part.begin() + (k + 1) * kPix, all.begin() + j * kPix));
        }
      }
  }
  mae::BatchLoader l(ds, 8, kB, 7);
  CHECK_THROWS_WITH_AS(l.set_shard(3, 3), doctest::Contains("rank 3 of 3"), mae::Error);
  CHECK_THROWS_WITH_AS(l.set_shard(0, 22), doctest::Contains("fewer than one batch of 2 on each of 22"), mae::Error);
}

TEST_CASE("figures: norm_pix predictions map back to pixels; the grid is a PNG of the right size") {
  const Index P = 6;
  std::vector<float> raw{0.1f, 0.5f, 0.9f, 0.2f, 0.3f, 0.7f}, t = raw;
  mae::normalize_patches(t.data(), 1, P);
  mae::unnormalize_patches(t.data(), raw.data(), 1, P);
  for (Index j = 0; j < P; ++j) CHECK(t[j] == doctest::Approx(raw[j]).epsilon(1e-5));
  using M = mae::MaskedAutoencoder<mae::Config<8, 2, 1, 16, 1, 2, 16, 1, 2>>;
  M m(M::Options{true, 1});
  const fs::path d = make_idx_dir("fig", 4);
  mae::FashionMnist ds(d.string());
  mae::BatchLoader l(ds, 8, 2, 1);
  std::vector<float> imgs(3 * 64);
  for (Index i = 0; i < 3; ++i) l.plain(i, imgs.data() + i * 64);
  const std::string png = (scratch_dir("figpng") / "grid.png").string();
  const std::string rng_before = m.rng().state();
  mae::save_reconstruction_grid(png, m, l, imgs, 3, 0.75, 5, 2);
  CHECK(m.rng().state() == rng_before);  // the figure does not disturb training randomness
  int w = 0, h = 0, n = 0;
  REQUIRE(stbi_info(png.c_str(), &w, &h, &n));
  CHECK(w == 4 * 16 + 5 * 2);
  CHECK(h == 3 * 16 + 4 * 2);
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

TEST_CASE("image folder: classes required, the same in train and val, sizes checked at the scan, loops named") {
  const fs::path d = mae_test::scratch_dir("folder_rules");
  fs::create_directories(d / "train" / "a"), fs::create_directories(d / "train" / "b");
  fs::create_directories(d / "val" / "a"), fs::create_directories(d / "val" / "c");
  for (const char* p : {"train/a/1.png", "train/b/2.png", "val/a/3.png", "val/c/4.png"})
    write_gray_png_file(d / p, 6, 5, 7);
  const mae::ImageFolder train((d / "train").string(), {1}), val((d / "val").string(), {1});
  CHECK(train.class_names() == std::vector<std::string>{"a", "b"});
  CHECK(train.item_name(1) == (d / "train" / "b" / "2.png").string());
  train.require_classes();
  CHECK_THROWS_WITH_AS(mae::require_same_classes(train, val),
                       doctest::Contains(("only in " + (d / "val").string() + ": 'c'").c_str()), mae::Error);
  // an image beside the class directories, or a single class
  write_gray_png_file(d / "train" / "loose.png", 6, 5, 7);
  CHECK_THROWS_WITH_AS(mae::ImageFolder((d / "train").string(), {1}).require_classes(),
                       doctest::Contains("loose.png: an image directly in"), mae::Error);
  fs::create_directories(d / "one" / "a");
  write_gray_png_file(d / "one" / "a" / "1.png", 6, 5, 7);
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
  write_gray_png_file(loop / "x" / "1.png", 4, 4, 1);
  fs::create_directory_symlink(loop, loop / "x" / "back");
  CHECK_THROWS_WITH_AS(mae::ImageFolder(loop.string(), {1}),
                       doctest::Contains(("image folder '" + loop.string()).c_str()), mae::Error);
}

TEST_CASE("image index: headers read once and kept between runs; what changed is read again; statistics kept") {
  const fs::path d = mae_test::scratch_dir("folder_index");
  fs::create_directories(d / "train" / "a"), fs::create_directories(d / "train" / "b"),
      fs::create_directories(d / "val" / "a");
  for (int i = 0; i < 6; ++i)
    write_gray_png_file(d / "train" / (i % 2 ? "b" : "a") / (std::to_string(i) + ".png"), 6 + i, 5, 7 + 30 * i);
  write_gray_png_file(d / "val" / "a" / "v.png", 9, 9, 3);
  const std::string index = (d / "image_index.txt").string(), train = (d / "train").string();
  const std::string abs0 = (fs::absolute(d) / "train" / "a" / "0.png").lexically_normal().string();
  const auto edit = [&](const std::string& from, const std::string& to) {  // one edit of the index file
    std::string t = slurp(index);
    const auto at = t.find(from);
    REQUIRE(at != std::string::npos);
    spit(index, t.replace(at, from.size(), to));
  };

  // a first run reads every header, and the index keeps them with the statistics
  std::vector<double> mean, sd;
  {
    mae::ImageIndexCache cache(index);
    const mae::ImageFolder f(train, {1}, &cache);
    CHECK(f.headers_read() == 6);
    mae::dataset_mean_std(f, mean, sd, 10000, {}, &cache);
    const mae::ImageFolder v((d / "val").string(), {1}, &cache);  // a second folder in the same index
    CHECK(cache.files() == 7);
    cache.save();
  }
  const std::string first = slurp(index);
  CHECK(first.rfind("mae image index 1\n", 0) == 0);

  // the next run reads no header: the sizes are the index's (an index that says otherwise is believed)
  edit(" 6 5 " + abs0 + "\n", " 6 4 " + abs0 + "\n");
  {
    mae::ImageIndexCache cache(index);
    const mae::ImageFolder f(train, {1}, &cache);
    CHECK(f.headers_read() == 0);
    CHECK(f.size() == 6);
    CHECK(f.height(0) == 4);  // from the index
    CHECK(f.width(5) == 11);  // from the index, as the file has it
    CHECK(!cache.changed());
  }
  // ... and the statistics, kept under a key of the images they came from
  spit(index, first);
  {
    std::string t = slurp(index);
    const auto at = t.find("\ns meanstd-");
    REQUIRE(at != std::string::npos);
    spit(index, t.substr(0, t.find(' ', at + 3)) + " 1 0.5 0.25\n");  // they say mean 0.5, std 0.25
  }
  {
    mae::ImageIndexCache cache(index);
    const mae::ImageFolder f(train, {1}, &cache);
    std::vector<double> m2, s2;
    mae::dataset_mean_std(f, m2, s2, 10000, {}, &cache);
    CHECK(m2 == std::vector<double>{0.5});
    CHECK(s2 == std::vector<double>{0.25});
  }
  spit(index, first);

  // a changed file (its stamp differs) and a new one are read again; a removed one leaves the index
  write_gray_png_file(d / "train" / "a" / "0.png", 7, 5, 250);
  write_gray_png_file(d / "train" / "b" / "new.png", 4, 4, 100);
  fs::remove(d / "train" / "a" / "2.png");
  {
    mae::ImageIndexCache cache(index);
    const mae::ImageFolder f(train, {1}, &cache);
    CHECK(f.headers_read() == 2);
    CHECK(f.size() == 6);
    CHECK(f.width(0) == 7);
    std::vector<double> m2, s2;  // the images changed: the statistics are computed again
    mae::dataset_mean_std(f, m2, s2, 10000, {}, &cache);
    CHECK(m2 != mean);
    std::vector<double> m3, s3;  // another subset of the images: another key, computed
    mae::dataset_mean_std(f, m3, s3, 3, {}, &cache);
    CHECK(m3 != m2);
    CHECK(cache.files() == 7);  // 2.png gone, new.png in, val's v.png kept
    cache.save();
  }
  CHECK(slurp(index).find("/2.png\n") == std::string::npos);
  CHECK(slurp(index).find("/v.png\n") != std::string::npos);
  {
    mae::ImageIndexCache cache(index);
    CHECK(mae::ImageFolder(train, {1}, &cache).headers_read() == 0);
    CHECK(!cache.changed());
  }

  // a file that is not an index is refused and left as it was; a damaged index is rebuilt
  const std::string notes = (d / "notes.txt").string();
  spit(notes, "my notes\n");
  CHECK_THROWS_WITH_AS(mae::ImageIndexCache{notes},
                       doctest::Contains("notes.txt' is not an image index written by mae"), mae::Error);
  CHECK(slurp(notes) == "my notes\n");
  for (const std::string& bad : {std::string("mae image index 1\nf 1 2 3 4 5 /x"),      // cut short
                                 std::string("mae image index 1\nf 1 2 3 0 5 /x\n"),    // no width
                                 std::string("mae image index 1\nf 1 2 3 4 5 x\n"),     // not absolute
                                 std::string("mae image index 1\ns k 2 0.1 0.2\n")}) {  // 2 channels, 2 values
    spit(index, bad);
    mae::ImageIndexCache cache(index);
    CHECK(cache.files() == 0);
    CHECK(cache.changed());
    CHECK(mae::ImageFolder(train, {1}, &cache).headers_read() == 6);
  }

  // the order of the files is std::filesystem::path's, component by component
  const fs::path o = mae_test::scratch_dir("folder_order");
  std::vector<fs::path> names = {"a/x.png", "a-b/x.png", "a/b/x.png", "A/x.png",   "a.b/x.png",
                                 "ab.png",  "a b/x.png", "a/b-c.png", "a/b/c.png", "\xc3\xa9/x.png"};
  for (const auto& n : names) {
    fs::create_directories((o / n).parent_path());
    write_gray_png_file(o / n, 2, 2, 1);
  }
  const mae::ImageFolder ordered(o.string(), {1});
  std::vector<fs::path> want;
  for (const auto& n : names) want.push_back(o / n);
  std::sort(want.begin(), want.end());
  REQUIRE(ordered.size() == static_cast<Index>(want.size()));
  for (Index i = 0; i < ordered.size(); ++i) CHECK(ordered.item_name(i) == want[static_cast<std::size_t>(i)].string());

  // the folder as text for another process: the same folder, made without reading a file
  const mae::ImageFolder f(train, {1});
  const mae::ImageFolder g = mae::ImageFolder::from_index(f.index(), {1});
  CHECK(g.headers_read() == 0);
  CHECK(g.name() == f.name());
  CHECK(g.class_names() == f.class_names());
  CHECK(g.content_stamp() == f.content_stamp());
  REQUIRE(g.size() == f.size());
  for (Index i = 0; i < f.size(); ++i) {
    CHECK(g.item_name(i) == f.item_name(i));
    CHECK(g.label(i) == f.label(i));
    CHECK((g.height(i) == f.height(i) && g.width(i) == f.width(i)));
  }
  CHECK(mae::dataset_fingerprint(g) == mae::dataset_fingerprint(f));
  std::string cut = f.index();
  cut.resize(cut.rfind('\n', cut.size() - 2) + 1);  // the last image's line lost
  CHECK_THROWS_AS(mae::ImageFolder::from_index(cut, {1}), mae::Error);
  CHECK_THROWS_AS(mae::ImageFolder::from_index("mae image folder 1\nx\ns\n0\n1\n5 1 1 /a.png\n", {1}), mae::Error);
}
