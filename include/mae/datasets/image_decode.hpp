// mae/datasets/image_decode.hpp — one image file to 8-bit pixels, (H, W, channels), with the
// format told by the file's content, not its name:
//   PNG   libspng          (Debian's libspng: fuzzed upstream, bounded chunk sizes)
//   JPEG  libjpeg-turbo    (TurboJPEG API, the library PIL decodes with: the same pixels)
//   WebP  libwebp          (PIL's decoder too; still images: an animation's first frame is refused)
//   TIFF  libtiff          (its RGBA interface: 1-16 bits, gray, RGB, palette, CMYK, YCbCr; the first page)
//   BMP, GIF (first frame), PGM/PPM   stb_image (Debian's libstb), only for those formats
// Channels are converted here, the same way for every format and as PIL's convert() does:
// alpha is dropped (not composited), gray is copied to R, G and B, RGB becomes luminance
// L = (19595 R + 38470 G + 7471 B + 2^15) >> 16 (PIL's ITU-R 601-2 rule), and CMYK (a JPEG's,
// inverted as Adobe writes it, or a TIFF's) becomes RGB by PIL's rule, R = (255 - K) - (255 - K) C / 255
// rounded. 16-bit samples keep their high byte, as PIL does for 16-bit RGB; PIL's convert()
// clips 16-bit gray to 255 instead (a white picture): there mae differs on purpose.
// tests/fixtures/images holds the pictures and PIL's pixels: every one decodes exactly.
//
// Errors are mae::Error naming the file: not an image, corrupt or truncated data (a JPEG's
// warnings, such as a premature end of data, count as errors; so do libtiff's errors), a
// 16-bit PGM/PPM, an animated WebP.
// The size is read first (read_image_size reads only the header) so that callers can refuse
// an image over their pixel limit before anything is decoded.
#ifndef MAE_DATASETS_IMAGE_DECODE_HPP
#define MAE_DATASETS_IMAGE_DECODE_HPP

#include "../core/common.hpp"

#include <spng.h>
#include <stb/stb_image.h>
#include <tiffio.h>
#include <turbojpeg.h>
#include <webp/decode.h>

#include <cstdarg>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace mae {

enum class ImageFormat { png, jpeg, webp, tiff, bmp, gif, pnm, unknown };
inline constexpr const char* kImageFormats = "PNG, JPEG, WebP, TIFF, BMP, GIF or PGM/PPM";  // for messages

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
  if (n >= 4 && std::memcmp(m, "RIFF", 4) == 0) {  // RIFF....WEBP
    unsigned char k[4] = {};
    std::fseek(f, 8, SEEK_SET);
    const bool webp = std::fread(k, 1, 4, f) == 4 && std::memcmp(k, "WEBP", 4) == 0;
    std::rewind(f);
    if (webp) return ImageFormat::webp;
  }
  if (n >= 4 && ((m[0] == 'I' && m[1] == 'I' && (m[2] == 42 || m[2] == 43) && m[3] == 0) ||
                 (m[0] == 'M' && m[1] == 'M' && m[2] == 0 && (m[3] == 42 || m[3] == 43))))
    return ImageFormat::tiff;  // classic or BigTIFF, either byte order
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

// PIL's cmyk2rgb (Convert.c): R = (255 - K) - round(C (255 - K) / 255), and so for G, B.
inline std::vector<unsigned char> cmyk_to_rgb(const unsigned char* src, std::size_t pixels) {
  std::vector<unsigned char> rgb(pixels * 3);
  for (std::size_t p = 0; p < pixels; ++p) {
    const unsigned nk = 255u - src[p * 4 + 3];
    for (std::size_t c = 0; c < 3; ++c) {
      const unsigned t = src[p * 4 + c] * nk + 128u;  // PIL's MULDIV255
      rgb[p * 3 + c] = static_cast<unsigned char>(nk - (((t >> 8) + t) >> 8));
    }
  }
  return rgb;
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
    // libspng's GA8 takes gray without alpha up to 8 bits; the rest goes through RGBA8
    const bool ga = ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE && ihdr.bit_depth <= 8;
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
  // An Adobe APP14 segment before the scan: its CMYK is stored inverted (PIL reads it as CMYK;I).
  bool adobe() const {
    std::size_t at = 2;
    while (at + 4 <= data.size() && data[at] == 0xFF) {
      const unsigned marker = data[at + 1];
      if (marker == 0xDA || marker == 0xD9) break;  // start of scan, end of image
      const std::size_t len = (std::size_t{data[at + 2]} << 8) | data[at + 3];
      if (marker == 0xEE && len >= 7 && at + 9 <= data.size() && std::memcmp(&data[at + 4], "Adobe", 5) == 0)
        return true;
      at += 2 + len;
    }
    return false;
  }
  std::vector<unsigned char> decode(int channels) {
    if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) {  // YCCK: libjpeg gives CMYK
      std::vector<unsigned char> cmyk(static_cast<std::size_t>(w) * static_cast<std::size_t>(h) * 4);
      if (tjDecompress2(tj.get(), data.data(), static_cast<unsigned long>(data.size()), cmyk.data(), w, 0, h, TJPF_CMYK,
                        TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS) != 0)
        fail(message());
      if (adobe())
        for (auto& v : cmyk) v = static_cast<unsigned char>(255 - v);
      const std::vector<unsigned char> rgb = cmyk_to_rgb(cmyk.data(), cmyk.size() / 4);
      return channels == 3 ? rgb : convert(rgb.data(), 3, rgb.size() / 3, channels);
    }
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

// --- WebP: libwebp
struct Webp {
  std::string path;
  std::vector<unsigned char> data;
  WebPBitstreamFeatures features{};
  // The header is in the first bytes (RIFF, VP8/VP8L/VP8X chunk); the decode reads all.
  Webp(std::FILE* f, const std::string& p, bool header_only) : path(p) {
    std::fseek(f, 0, SEEK_END);
    const long size = std::ftell(f);
    std::rewind(f);
    if (size < 0) throw Error(path + ": cannot read");
    data.resize(static_cast<std::size_t>(header_only ? std::min(size, 4096L) : size));
    if (std::fread(data.data(), 1, data.size(), f) != data.size()) throw Error(path + ": cannot read");
    const VP8StatusCode st = WebPGetFeatures(data.data(), data.size(), &features);
    if (st != VP8_STATUS_OK) fail(reason(st));
    if (features.has_animation) fail("an animated WebP; save its first frame as a still image");
  }
  [[noreturn]] void fail(const std::string& why) const { throw Error(path + ": unreadable WebP (" + why + ")"); }
  static std::string reason(VP8StatusCode st) {
    switch (st) {
      case VP8_STATUS_NOT_ENOUGH_DATA:
        return "truncated";
      case VP8_STATUS_BITSTREAM_ERROR:
        return "corrupt data";
      case VP8_STATUS_UNSUPPORTED_FEATURE:
        return "a feature libwebp does not decode";
      case VP8_STATUS_OUT_OF_MEMORY:
        return "out of memory";
      default:
        return "error " + std::to_string(static_cast<int>(st));
    }
  }
  std::vector<unsigned char> decode(int channels) {
    const std::size_t pixels = static_cast<std::size_t>(features.width) * static_cast<std::size_t>(features.height);
    const int comps = features.has_alpha ? 4 : 3;  // RGBA is not premultiplied: its RGB is the picture's
    std::vector<unsigned char> px(pixels * comps);
    const int stride = features.width * comps;
    const bool ok = features.has_alpha ? WebPDecodeRGBAInto(data.data(), data.size(), px.data(), px.size(), stride)
                                       : WebPDecodeRGBInto(data.data(), data.size(), px.data(), px.size(), stride);
    if (!ok) fail("corrupt or truncated data");
    if (comps == 3 && channels == 3) return px;
    return convert(px.data(), comps, pixels, channels);
  }
};

// --- TIFF: libtiff. Its messages go to this file's error, not to stderr; warnings (unknown
// tags and the like) are dropped.
struct Tiff {
  std::string path, error;
  std::unique_ptr<TIFF, void (*)(TIFF*)> tif{nullptr, TIFFClose};
  std::uint32_t w = 0, h = 0;
  static int on_error(TIFF*, void* self, const char* module, const char* fmt, va_list ap) {
    char line[512];
    std::vsnprintf(line, sizeof line, fmt, ap);
    std::string& e = static_cast<Tiff*>(self)->error;
    if (e.empty()) e = (module ? std::string(module) + ": " : std::string()) + line;
    return 1;
  }
  static int on_warning(TIFF*, void*, const char*, const char*, va_list) { return 1; }
  // libtiff reads through the FILE (a file's, or fmemopen's over bytes in memory)
  static tmsize_t read(thandle_t f, void* buf, tmsize_t n) {
    return static_cast<tmsize_t>(std::fread(buf, 1, static_cast<std::size_t>(n), static_cast<std::FILE*>(f)));
  }
  static tmsize_t write(thandle_t, void*, tmsize_t) { return 0; }
  static toff_t seek(thandle_t f, toff_t off, int whence) {
    auto* file = static_cast<std::FILE*>(f);
    if (std::fseek(file, static_cast<long>(off), whence) != 0) return static_cast<toff_t>(-1);
    return static_cast<toff_t>(std::ftell(file));
  }
  static int close(thandle_t) { return 0; }  // the FILE is the caller's
  static toff_t size(thandle_t f) {
    auto* file = static_cast<std::FILE*>(f);
    const long at = std::ftell(file);
    std::fseek(file, 0, SEEK_END);
    const long end = std::ftell(file);
    std::fseek(file, at, SEEK_SET);
    return static_cast<toff_t>(end < 0 ? 0 : end);
  }
  static int map(thandle_t, void**, toff_t*) { return 0; }
  static void unmap(thandle_t, void*, toff_t) {}
  Tiff(std::FILE* f, const std::string& p) : path(p) {
    std::unique_ptr<TIFFOpenOptions, void (*)(TIFFOpenOptions*)> o(TIFFOpenOptionsAlloc(), TIFFOpenOptionsFree);
    if (!o) throw Error(path + ": out of memory");
    TIFFOpenOptionsSetErrorHandlerExtR(o.get(), on_error, this);
    TIFFOpenOptionsSetWarningHandlerExtR(o.get(), on_warning, this);
    TIFFOpenOptionsSetMaxSingleMemAlloc(o.get(), tmsize_t{1} << 30);  // a corrupt header's allocation, bounded
    std::rewind(f);
    tif.reset(TIFFClientOpenExt(path.c_str(), "rm", f, read, write, seek, close, size, map, unmap, o.get()));
    if (!tif) fail();
    if (!TIFFGetField(tif.get(), TIFFTAG_IMAGEWIDTH, &w) || !TIFFGetField(tif.get(), TIFFTAG_IMAGELENGTH, &h) ||
        w == 0 || h == 0 || w > (1u << 30) || h > (1u << 30))
      fail("no image size");
  }
  [[noreturn]] void fail(const std::string& why = "") const {
    throw Error(path + ": unreadable TIFF (" + (why.empty() ? (error.empty() ? "corrupt" : error) : why) + ")");
  }
  std::vector<unsigned char> decode(int channels) {
    // Two of libtiff's conversions differ from PIL's, so its tags are adjusted in memory (the
    // file is not written): alpha marked associated, so that the colors are not multiplied by
    // it (PIL's convert drops alpha as it is); 8-bit CMYK read as RGB + an extra sample, raw,
    // converted below by PIL's rule (libtiff's rounds down).
    std::uint16_t photometric = 0, samples = 1, bits = 8, ink = INKSET_CMYK, extra = 0;
    std::uint16_t* extra_kinds = nullptr;
    TIFFGetFieldDefaulted(tif.get(), TIFFTAG_PHOTOMETRIC, &photometric);
    TIFFGetFieldDefaulted(tif.get(), TIFFTAG_SAMPLESPERPIXEL, &samples);
    TIFFGetFieldDefaulted(tif.get(), TIFFTAG_BITSPERSAMPLE, &bits);
    TIFFGetFieldDefaulted(tif.get(), TIFFTAG_INKSET, &ink);
    TIFFGetFieldDefaulted(tif.get(), TIFFTAG_EXTRASAMPLES, &extra, &extra_kinds);
    const bool cmyk = photometric == PHOTOMETRIC_SEPARATED && ink == INKSET_CMYK && samples == 4 && bits == 8;
    std::uint16_t associated[8];
    if (cmyk) {
      associated[0] = EXTRASAMPLE_ASSOCALPHA;
      TIFFSetField(tif.get(), TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
      TIFFSetField(tif.get(), TIFFTAG_EXTRASAMPLES, 1, associated);
    } else if (extra > 0 && extra <= 8 && extra_kinds && extra_kinds[0] == EXTRASAMPLE_UNASSALPHA) {
      std::copy(extra_kinds, extra_kinds + extra, associated);
      associated[0] = EXTRASAMPLE_ASSOCALPHA;
      TIFFSetField(tif.get(), TIFFTAG_EXTRASAMPLES, extra, associated);
    }
    char why[1024] = {};
    if (!TIFFRGBAImageOK(tif.get(), why)) fail(why);
    const std::size_t pixels = std::size_t{w} * h;
    std::vector<std::uint32_t> raster(pixels);  // ABGR words, top row first
    if (!TIFFReadRGBAImageOriented(tif.get(), w, h, raster.data(), ORIENTATION_TOPLEFT, /*stop_on_error=*/1) ||
        !error.empty())
      fail();
    // each word is R, G, B, A from its low byte up (C, M, Y, K for the CMYK read as RGB + extra)
    std::vector<unsigned char> bytes(pixels * 4);
    for (std::size_t p = 0; p < pixels; ++p)
      for (std::size_t k = 0; k < 4; ++k) bytes[p * 4 + k] = static_cast<unsigned char>(raster[p] >> (8 * k));
    if (cmyk) {
      const std::vector<unsigned char> rgb = cmyk_to_rgb(bytes.data(), pixels);
      return channels == 3 ? rgb : convert(rgb.data(), 3, pixels, channels);
    }
    return convert(bytes.data(), 4, pixels, channels);  // alpha dropped
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

// A FILE over bytes in memory (an image inside a tar shard), read by the same decoders.
inline File open_memory(const unsigned char* data, std::size_t size, const std::string& name) {
  if (size == 0) throw Error(name + ": empty file (0 bytes), not an image");
  File f(fmemopen(const_cast<unsigned char*>(data), size, "rb"), std::fclose);
  if (!f) throw Error(name + ": cannot read (" + std::strerror(errno) + ")");
  return f;
}

// The header, then, for channels 1 or 3, the pixels as (height, width, channels) bytes
// (channels 0: the header only). A size other than `expect` (if given) is an error. `path`
// names the image in messages.
inline std::vector<unsigned char> read_image(std::FILE* file, const std::string& path, int channels, ImageSize& s,
                                             const ImageSize* expect) {
  std::FILE* const f = file;
  const auto check_size = [&] {
    if (expect && (s.width != expect->width || s.height != expect->height))
      throw Error(path + ": the image changed since the folder was read (" + std::to_string(expect->width) + "x" +
                  std::to_string(expect->height) + ", now " + std::to_string(s.width) + "x" + std::to_string(s.height) +
                  ")");
  };
  const ImageFormat format = sniff(f);
  switch (format) {
    case ImageFormat::png: {
      Png png(f, path);
      s = {static_cast<int>(png.ihdr.width), static_cast<int>(png.ihdr.height)};
      check_size();
      return channels ? png.decode(channels) : std::vector<unsigned char>{};
    }
    case ImageFormat::jpeg: {
      Jpeg jpeg(f, path, /*header_only=*/channels == 0);
      s = {jpeg.w, jpeg.h};
      check_size();
      return channels ? jpeg.decode(channels) : std::vector<unsigned char>{};
    }
    case ImageFormat::webp: {
      Webp webp(f, path, /*header_only=*/channels == 0);
      s = {webp.features.width, webp.features.height};
      check_size();
      return channels ? webp.decode(channels) : std::vector<unsigned char>{};
    }
    case ImageFormat::tiff: {
      Tiff tiff(f, path);
      s = {static_cast<int>(tiff.w), static_cast<int>(tiff.h)};
      check_size();
      return channels ? tiff.decode(channels) : std::vector<unsigned char>{};
    }
    case ImageFormat::bmp:
    case ImageFormat::gif:
    case ImageFormat::pnm: {
      if (format == ImageFormat::pnm) refuse_unsafe_pnm(f, path);
      int n = 0;
      if (!channels) {
        if (!stbi_info_from_file(f, &s.width, &s.height, &n))
          throw Error(path + ": unreadable image (" + stb_reason() + ")");
        check_size();
        return {};
      }
      std::unique_ptr<unsigned char, void (*)(void*)> raw(stbi_load_from_file(f, &s.width, &s.height, &n, 0),
                                                          stbi_image_free);
      if (!raw) throw Error(path + ": unreadable image (" + stb_reason() + ")");
      check_size();
      return convert(raw.get(), n, static_cast<std::size_t>(s.width) * static_cast<std::size_t>(s.height), channels);
    }
    default:
      throw Error(path + ": unreadable image (not a " + kImageFormats + " file)");
  }
}

inline std::vector<unsigned char> read_image(const std::string& path, int channels, ImageSize& s,
                                             const ImageSize* expect) {
  const File f = open(path);
  return read_image(f.get(), path, channels, s, expect);
}

inline void check_channels(int channels, const std::string& name) {
  if (channels != 1 && channels != 3)
    throw Error(name + ": decode to 1 or 3 channels, not " + std::to_string(channels));
}

}  // namespace image_detail

// Width and height from the header; decodes nothing.
inline ImageSize read_image_size(const std::string& path) {
  ImageSize s;
  image_detail::read_image(path, 0, s, nullptr);
  return s;
}
// The same for an image's bytes in memory; `name` is for messages.
inline ImageSize read_image_size_memory(const unsigned char* data, std::size_t size, const std::string& name) {
  ImageSize s;
  const image_detail::File f = image_detail::open_memory(data, size, name);
  image_detail::read_image(f.get(), name, 0, s, nullptr);
  return s;
}

// The whole image as (height, width, channels) bytes; channels 1 or 3. `expect`, if given,
// is the size read before: a file that changed since is an error, not a surprise.
inline std::vector<unsigned char> decode_image(const std::string& path, int channels, ImageSize* size,
                                               const ImageSize* expect = nullptr) {
  image_detail::check_channels(channels, path);
  ImageSize s;
  std::vector<unsigned char> px = image_detail::read_image(path, channels, s, expect);
  if (size) *size = s;
  return px;
}
inline std::vector<unsigned char> decode_image_memory(const unsigned char* data, std::size_t bytes,
                                                      const std::string& name, int channels, ImageSize* size,
                                                      const ImageSize* expect = nullptr) {
  image_detail::check_channels(channels, name);
  ImageSize s;
  const image_detail::File f = image_detail::open_memory(data, bytes, name);
  std::vector<unsigned char> px = image_detail::read_image(f.get(), name, channels, s, expect);
  if (size) *size = s;
  return px;
}

}  // namespace mae

#endif  // MAE_DATASETS_IMAGE_DECODE_HPP
