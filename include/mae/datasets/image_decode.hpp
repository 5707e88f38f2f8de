// mae/datasets/image_decode.hpp — one image file to 8-bit pixels, (H, W, channels), with the
// format told by the file's content, not its name:
//   PNG   libspng          (Debian's libspng: fuzzed upstream, bounded chunk sizes)
//   JPEG  libjpeg-turbo    (TurboJPEG API, the library PIL decodes with: the same pixels)
//   BMP, GIF (first frame), PGM/PPM   stb_image (Debian's libstb), only for those formats
// Channels are converted here, the same way for every format and as PIL's convert() does:
// alpha is dropped (not composited), gray is copied to R, G and B, and RGB becomes luminance
// L = (19595 R + 38470 G + 7471 B + 2^15) >> 16, PIL's ITU-R 601-2 rule.
//
// Errors are mae::Error naming the file: not an image, corrupt or truncated data (a JPEG's
// warnings, such as a premature end of data, count as errors), a CMYK JPEG, a 16-bit PGM/PPM.
// The size is read first (read_image_size reads only the header) so that callers can refuse
// an image over their pixel limit before anything is decoded.
#ifndef MAE_DATASETS_IMAGE_DECODE_HPP
#define MAE_DATASETS_IMAGE_DECODE_HPP

#include "../core/common.hpp"

#include <spng.h>
#include <stb/stb_image.h>
#include <turbojpeg.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace mae {

enum class ImageFormat { png, jpeg, bmp, gif, pnm, unknown };
inline constexpr const char* kImageFormats = "PNG, JPEG, BMP, GIF or PGM/PPM";  // for messages

struct ImageSize {
  int width = 0, height = 0;
};

namespace image_detail {

using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

inline File open(const std::string& path) {
  File f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!f) throw Error(path + ": cannot open (" + std::strerror(errno) + ")");
  return f;
}

inline ImageFormat sniff(std::FILE* f) {
  unsigned char m[8] = {};
  const std::size_t n = std::fread(m, 1, sizeof m, f);
  std::rewind(f);
  if (n >= 8 && m[0] == 0x89 && m[1] == 'P' && m[2] == 'N' && m[3] == 'G' && m[4] == '\r' && m[5] == '\n' &&
      m[6] == 0x1a && m[7] == '\n')
    return ImageFormat::png;
  if (n >= 3 && m[0] == 0xFF && m[1] == 0xD8 && m[2] == 0xFF) return ImageFormat::jpeg;
  if (n >= 2 && m[0] == 'B' && m[1] == 'M') return ImageFormat::bmp;
  if (n >= 6 && m[0] == 'G' && m[1] == 'I' && m[2] == 'F' && m[3] == '8' && (m[4] == '7' || m[4] == '9') && m[5] == 'a')
    return ImageFormat::gif;
  if (n >= 2 && m[0] == 'P' && (m[1] == '5' || m[1] == '6')) return ImageFormat::pnm;
  return ImageFormat::unknown;
}

// (pixels, comps) bytes, comps 1 (G), 2 (GA), 3 (RGB), 4 (RGBA) -> (pixels, channels), channels 1 or 3.
inline std::vector<unsigned char> convert(const unsigned char* src, int comps, std::size_t pixels, int channels) {
  std::vector<unsigned char> out(pixels * static_cast<std::size_t>(channels));
  const std::size_t cs = static_cast<std::size_t>(comps);
  for (std::size_t p = 0; p < pixels; ++p) {
    const unsigned char* s = src + p * cs;
    if (channels == 3) {
      for (std::size_t c = 0; c < 3; ++c) out[p * 3 + c] = comps >= 3 ? s[c] : s[0];
    } else {
      out[p] = comps >= 3 ? static_cast<unsigned char>((19595u * s[0] + 38470u * s[1] + 7471u * s[2] + 0x8000u) >> 16)
                          : s[0];
    }
  }
  return out;
}

// --- PNG: libspng
struct Png {
  std::unique_ptr<spng_ctx, void (*)(spng_ctx*)> ctx{spng_ctx_new(0), spng_ctx_free};
  std::string path;
  spng_ihdr ihdr{};
  Png(std::FILE* f, const std::string& p) : path(p) {
    if (!ctx) throw Error(path + ": out of memory");
    check(spng_set_chunk_limits(ctx.get(), 64u << 20, 64u << 20));  // ancillary chunks, not pixels
    check(spng_set_png_file(ctx.get(), f));
    check(spng_get_ihdr(ctx.get(), &ihdr));
  }
  void check(int err) const {
    if (err) throw Error(path + ": unreadable PNG (" + spng_strerror(err) + ")");
  }
  std::vector<unsigned char> decode(int channels) {
    const bool gray =
        ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE || ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE_ALPHA;
    const bool ga = gray && ihdr.bit_depth <= 8;  // libspng's GA8 takes gray up to 8 bits
    const int fmt = ga ? SPNG_FMT_GA8 : SPNG_FMT_RGBA8;
    std::size_t bytes = 0;
    check(spng_decoded_image_size(ctx.get(), fmt, &bytes));
    std::vector<unsigned char> px(bytes);
    check(spng_decode_image(ctx.get(), px.data(), px.size(), fmt, SPNG_DECODE_TRNS));
    return convert(px.data(), ga ? 2 : 4, std::size_t{ihdr.width} * ihdr.height, channels);
  }
};

// --- JPEG: libjpeg-turbo
struct Jpeg {
  std::unique_ptr<void, int (*)(tjhandle)> tj{tjInitDecompress(), tjDestroy};
  std::string path;
  std::vector<unsigned char> data;
  int w = 0, h = 0, subsamp = 0, colorspace = 0;

  // Reads the first `limit` bytes (0: all) and the header from them.
  bool read(std::FILE* f, long limit) {
    std::fseek(f, 0, SEEK_END);
    const long size = std::ftell(f);
    std::rewind(f);
    if (size < 0) throw Error(path + ": cannot read");
    const long n = limit > 0 && limit < size ? limit : size;
    data.resize(static_cast<std::size_t>(n));
    if (std::fread(data.data(), 1, data.size(), f) != data.size()) throw Error(path + ": cannot read");
    const bool ok = tjDecompressHeader3(tj.get(), data.data(), static_cast<unsigned long>(data.size()), &w, &h,
                                        &subsamp, &colorspace) == 0;
    return ok || n == size;  // done, or nothing more to read
  }
  Jpeg(std::FILE* f, const std::string& p, bool header_only) : path(p) {
    if (!tj) throw Error(path + ": out of memory");
    // The header is in the first kilobytes unless large metadata segments come first.
    if (!header_only || !read(f, 1 << 16)) read(f, 0);
    if (w <= 0 || h <= 0) fail(message());
  }
  [[noreturn]] void fail(const std::string& why) const { throw Error(path + ": unreadable JPEG (" + why + ")"); }
  std::string message() const { return tjGetErrorStr2(tj.get()); }
  std::vector<unsigned char> decode(int channels) {
    if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) fail("a CMYK image; convert it to RGB");
    const bool gray = colorspace == TJCS_GRAY;
    const int comps = gray ? 1 : 3;
    std::vector<unsigned char> px(static_cast<std::size_t>(w) * static_cast<std::size_t>(h) * comps);
    // the accurate DCT and fancy upsampling (TurboJPEG's defaults, and PIL's); a warning
    // (corrupt or truncated data) stops the decode; at most 500 progressive scans
    if (tjDecompress2(tj.get(), data.data(), static_cast<unsigned long>(data.size()), px.data(), w, 0, h,
                      gray ? TJPF_GRAY : TJPF_RGB, TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS) != 0)
      fail(message());
    if (comps == channels) return px;
    return convert(px.data(), comps, px.size() / static_cast<std::size_t>(comps), channels);
  }
};

// --- BMP, GIF, PGM/PPM: stb_image
inline std::string stb_reason() {
  const char* r = stbi_failure_reason();
  return r ? r : "unknown error";
}

// Debian's stb (2022-09) overflows on two PGM/PPM inputs (found by tests/fuzz/fuzz_image),
// refused before stb sees the file: header numbers past 9 digits (its int parser) and
// 16-bit images (converted as 8-bit data, then twice that buffer read).
inline void refuse_unsafe_pnm(std::FILE* f, const std::string& path) {
  // stb's own parse: the character that ends a number is the first one looked at next
  const auto space = [](int c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  std::fseek(f, 2, SEEK_SET);
  int c = std::getc(f);
  for (int field = 0; field < 3; ++field) {  // width, height, maxval
    for (;;) {
      while (space(c)) c = std::getc(f);
      if (c != '#') break;
      while (c != EOF && c != '\n' && c != '\r') c = std::getc(f);
    }
    int digits = 0;
    for (; c >= '0' && c <= '9'; c = std::getc(f)) ++digits;
    if (digits > 9) throw Error(path + ": corrupt PGM/PPM header (a number of " + std::to_string(digits) + " digits)");
  }
  std::rewind(f);
  if (stbi_is_16_bit_from_file(f))
    throw Error(path + ": a 16-bit PGM/PPM image; convert it to 8 bits or to PNG (stb's 16-bit PNM reader is unsafe)");
  std::rewind(f);
}

}  // namespace image_detail

// The format by content.
inline ImageFormat image_format(const std::string& path) {
  const auto f = image_detail::open(path);
  return image_detail::sniff(f.get());
}

namespace image_detail {

// The header, then, for channels 1 or 3, the pixels as (height, width, channels) bytes
// (channels 0: the header only). A size other than `expect` (if given) is an error.
inline std::vector<unsigned char> read_image(const std::string& path, int channels, ImageSize& s,
                                             const ImageSize* expect) {
  const File f = open(path);
  const auto check_size = [&] {
    if (expect && (s.width != expect->width || s.height != expect->height))
      throw Error(path + ": the image changed since the folder was read (" + std::to_string(expect->width) + "x" +
                  std::to_string(expect->height) + ", now " + std::to_string(s.width) + "x" + std::to_string(s.height) +
                  ")");
  };
  const ImageFormat format = sniff(f.get());
  switch (format) {
    case ImageFormat::png: {
      Png png(f.get(), path);
      s = {static_cast<int>(png.ihdr.width), static_cast<int>(png.ihdr.height)};
      check_size();
      return channels ? png.decode(channels) : std::vector<unsigned char>{};
    }
    case ImageFormat::jpeg: {
      Jpeg jpeg(f.get(), path, /*header_only=*/channels == 0);
      s = {jpeg.w, jpeg.h};
      check_size();
      return channels ? jpeg.decode(channels) : std::vector<unsigned char>{};
    }
    case ImageFormat::bmp:
    case ImageFormat::gif:
    case ImageFormat::pnm: {
      if (format == ImageFormat::pnm) refuse_unsafe_pnm(f.get(), path);
      int n = 0;
      if (!channels) {
        if (!stbi_info_from_file(f.get(), &s.width, &s.height, &n))
          throw Error(path + ": unreadable image (" + stb_reason() + ")");
        check_size();
        return {};
      }
      std::unique_ptr<unsigned char, void (*)(void*)> raw(stbi_load_from_file(f.get(), &s.width, &s.height, &n, 0),
                                                          stbi_image_free);
      if (!raw) throw Error(path + ": unreadable image (" + stb_reason() + ")");
      check_size();
      return convert(raw.get(), n, static_cast<std::size_t>(s.width) * static_cast<std::size_t>(s.height), channels);
    }
    default:
      throw Error(path + ": unreadable image (not a " + kImageFormats + " file)");
  }
}

}  // namespace image_detail

// Width and height from the header; decodes nothing.
inline ImageSize read_image_size(const std::string& path) {
  ImageSize s;
  image_detail::read_image(path, 0, s, nullptr);
  return s;
}

// The whole image as (height, width, channels) bytes; channels 1 or 3. `expect`, if given,
// is the size read before: a file that changed since is an error, not a surprise.
inline std::vector<unsigned char> decode_image(const std::string& path, int channels, ImageSize* size,
                                               const ImageSize* expect = nullptr) {
  if (channels != 1 && channels != 3)
    throw Error(path + ": decode to 1 or 3 channels, not " + std::to_string(channels));
  ImageSize s;
  std::vector<unsigned char> px = image_detail::read_image(path, channels, s, expect);
  if (size) *size = s;
  return px;
}

}  // namespace mae

#endif  // MAE_DATASETS_IMAGE_DECODE_HPP
