// libFuzzer harness: one image file (PNG, JPEG, WebP, TIFF, BMP, GIF, PGM/PPM by content) through
// ImageFolder's scan and decode, shrunk and converted to RGB and to gray. The pixel limit is
// kept small so that a large but valid image is refused instead of exhausting the fuzzer.
#include "fuzz_common.hpp"

// stb_image compiled here, instrumented, instead of Debian's libstb: the fuzzer then sees
// (and ASan checks) the BMP/GIF/PNM decoders' own branches too.
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
#undef STB_IMAGE_IMPLEMENTATION  // image_folder.hpp includes the header again

#include <mae/datasets/image_folder.hpp>

#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = mae_fuzz::write_input("image", data, size, ".png");  // stb decodes by content
  for (mae::Index channels : {3, 1}) {
    try {
      mae::ImageFolderOptions o;
      o.channels = channels, o.max_side = 32, o.max_pixels = 1 << 20;
      const mae::ImageFolder folder(std::vector<std::string>{path}, o);
      std::vector<float> px(static_cast<std::size_t>(channels * folder.height(0) * folder.width(0)));
      folder.load(0, px.data());
    } catch (const mae::Error&) {
    }
  }
  return 0;
}
