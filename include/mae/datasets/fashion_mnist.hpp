// mae/datasets/fashion_mnist.hpp — Fashion-MNIST (or MNIST) from the gzip IDX files of Debian's
// dataset-fashion-mnist package.
//
// Needs zlib: link ZLIB::ZLIB (the mae::data CMake target does).
#ifndef MAE_DATASETS_FASHION_MNIST_HPP
#define MAE_DATASETS_FASHION_MNIST_HPP

#include "../core/common.hpp"
#include "../data/loader.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

namespace mae {

// A gzip file read through zlib, a piece at a time; errors name the file.
class GzipReader {
 public:
  explicit GzipReader(const std::string& path) : path_(path) {
    if (!std::filesystem::exists(path)) throw Error(path + ": no such file");
    f_ = gzopen(path.c_str(), "rb");
    if (!f_) throw Error(path + ": cannot open (" + std::strerror(errno) + ")");
  }
  ~GzipReader() {
    if (f_) gzclose(f_);
  }
  GzipReader(const GzipReader&) = delete;
  GzipReader& operator=(const GzipReader&) = delete;

  // Up to n bytes appended to out (fewer only at the end of the data): the bytes read.
  std::size_t read(std::vector<unsigned char>& out, std::size_t n) {
    std::size_t done = 0;
    unsigned char buf[1 << 16];
    while (done < n) {
      const unsigned want = static_cast<unsigned>(std::min<std::size_t>(sizeof buf, n - done));
      const int got = gzread(f_, buf, want);
      if (got < 0) fail();
      if (got == 0) break;
      out.insert(out.end(), buf, buf + got);
      done += static_cast<std::size_t>(got);
    }
    int errnum = 0;
    gzerror(f_, &errnum);
    if (errnum != Z_OK && errnum != Z_STREAM_END) fail();
    return done;
  }
  void close() {
    const int rc = gzclose(f_);
    f_ = nullptr;
    if (rc != Z_OK) throw Error(path_ + ": truncated or corrupt gzip file");
  }

 private:
  [[noreturn]] void fail() {
    int errnum = 0;
    const std::string msg = gzerror(f_, &errnum);
    throw Error(path_ + ": corrupt gzip data (" + msg + ")");
  }
  std::string path_;
  gzFile f_ = nullptr;
};

// The IDX format of (Fashion-)MNIST: big-endian magic 0x00000803 (images) or 0x00000801
// (labels), then the dimensions, then unsigned bytes.
struct IdxFile {
  std::vector<std::uint32_t> dims;
  std::vector<unsigned char> data;
};

// Reads an IDX file of unsigned bytes. Bounded by its header: the product of the dimensions
// is checked for overflow, and inflation stops one byte past the size the header states (a
// file with more data is refused, so a decompression bomb costs at most that size), and no
// memory is reserved before the data arrives (a header promising terabytes costs nothing).
inline IdxFile read_idx(const std::string& path, int expected_ndim) {
  GzipReader gz(path);
  std::vector<unsigned char> head;
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(expected_ndim);
  gz.read(head, header);
  auto be32 = [&](std::size_t at) {
    return (std::uint32_t(head[at]) << 24) | (std::uint32_t(head[at + 1]) << 16) | (std::uint32_t(head[at + 2]) << 8) |
           std::uint32_t(head[at + 3]);
  };
  if (head.size() < 4) throw Error(path + ": truncated IDX file (" + std::to_string(head.size()) + " bytes)");
  const std::uint32_t magic = be32(0);
  if (magic != 0x800u + static_cast<std::uint32_t>(expected_ndim)) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%08x", magic);
    throw Error(path + ": wrong magic number " + hex + " (expected an unsigned-byte IDX file with " +
                std::to_string(expected_ndim) + " dimensions)");
  }
  if (head.size() < header) throw Error(path + ": truncated IDX header");
  IdxFile idx;
  std::size_t count = 1;
  for (int d = 0; d < expected_ndim; ++d) {
    const std::uint32_t dim = be32(4 + 4 * static_cast<std::size_t>(d));
    idx.dims.push_back(dim);
    if (dim != 0 && count > (std::numeric_limits<std::size_t>::max() - 1) / dim)
      throw Error(path + ": corrupt IDX header: the dimensions' product overflows");
    count *= dim;
  }
  const std::size_t got = gz.read(idx.data, count + 1);  // one more: is there extra data?
  gz.close();
  if (got != count)
    throw Error(path + ": truncated or corrupt IDX file: " + (got > count ? "more than " : "") + std::to_string(got) +
                " data bytes, the header promises " + std::to_string(count));
  return idx;
}

// Fashion-MNIST (or MNIST) from the IDX files: 28x28 grayscale, labels 0-9.
class FashionMnist : public ImageDataset {
 public:
  static constexpr const char* kDefaultDir = "/usr/share/datasets/fashion-mnist";

  // split: "train" (60000 images) or "t10k" (10000 images)
  explicit FashionMnist(const std::string& dir = kDefaultDir, const std::string& split = "train") : split_(split) {
    if (split != "train" && split != "t10k")
      throw Error("Fashion-MNIST split must be 'train' or 't10k', not '" + split + "'");
    if (!std::filesystem::is_directory(dir))
      throw Error("Fashion-MNIST not found: '" + dir +
                  "' is not a directory. Install Debian's package (apt-get install dataset-fashion-mnist) or give "
                  "the directory holding " +
                  split + "-images-idx3-ubyte.gz");
    const std::string ip = dir + "/" + split + "-images-idx3-ubyte.gz",
                      lp = dir + "/" + split + "-labels-idx1-ubyte.gz";
    IdxFile images = read_idx(ip, 3), labels = read_idx(lp, 1);
    if (images.dims[1] == 0 || images.dims[2] == 0) throw Error(ip + ": empty images");
    if (labels.dims[0] != images.dims[0])
      throw Error(lp + ": " + std::to_string(labels.dims[0]) + " labels for " + std::to_string(images.dims[0]) +
                  " images");
    for (unsigned char l : labels.data)
      if (l > 9) throw Error(lp + ": label " + std::to_string(l) + " is outside 0-9");
    n_ = images.dims[0], h_ = images.dims[1], w_ = images.dims[2];
    pixels_ = std::move(images.data);
    labels_ = std::move(labels.data);
  }

  Index size() const override { return n_; }
  Index channels() const override { return 1; }
  Index height(Index) const override { return h_; }
  Index width(Index) const override { return w_; }
  void load(Index i, float* out) const override {
    const unsigned char* src = pixels_.data() + i * h_ * w_;
    for (Index k = 0; k < h_ * w_; ++k) out[k] = static_cast<float>(src[k]) / 255.0f;
  }
  int label(Index i) const override { return labels_[static_cast<std::size_t>(i)]; }
  std::string name() const override { return "fashion-mnist/" + split_; }
  std::vector<std::string> class_names() const override {
    return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
  }

  // Keep only the first n images (quick runs).
  void truncate(Index n) {
    if (n < n_)
      n_ = n, pixels_.resize(static_cast<std::size_t>(n * h_ * w_)), labels_.resize(static_cast<std::size_t>(n));
  }

 private:
  std::string split_;
  Index n_ = 0, h_ = 0, w_ = 0;
  std::vector<unsigned char> pixels_, labels_;
};

}  // namespace mae

#endif  // MAE_DATASETS_FASHION_MNIST_HPP
