// libFuzzer harness: safetensors::File on arbitrary bytes, then every tensor read as float.
#include "fuzz_common.hpp"

#include <mae/io/safetensors.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = mae_fuzz::write_input("safetensors", data, size);
  try {
    const mae::safetensors::File f(path);
    for (const auto& [name, entry] : f.tensors()) {
      mae::Shape shape;
      const std::vector<float> v = f.read<float>(name, &shape);
      if (v.empty() && !shape.empty() && entry.shape != shape) std::abort();
    }
  } catch (const mae::Error&) {
  }
  return 0;
}
