// libFuzzer harness: the IDX reader (gzip through zlib, or plain) on arbitrary bytes, as an
// image file (3 dimensions) and as a label file (1).
#include "fuzz_common.hpp"

#include <mae/datasets/fashion_mnist.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = mae_fuzz::write_input("idx", data, size);
  for (int ndim : {3, 1}) {
    try {
      const mae::IdxFile idx = mae::read_idx(path, ndim);
      std::size_t n = 1;
      for (auto d : idx.dims) n *= static_cast<std::size_t>(d);
      if (n != idx.data.size()) std::abort();  // the reader promises exactly the header's bytes
    } catch (const mae::Error&) {
    }
  }
  return 0;
}
