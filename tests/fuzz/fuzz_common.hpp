// What the harnesses share: the loaders read files, so each input is written to one scratch
// file per process first. A mae::Error is the expected answer to a bad file; anything else
// (a crash, a sanitizer report, another exception, a leak) is a finding.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace mae_fuzz {

inline std::string write_input(const char* tag, const std::uint8_t* data, std::size_t size, const char* suffix = "") {
  static const std::string path = "/tmp/mae_fuzz_" + std::string(tag) + "_" + std::to_string(getpid()) + suffix;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

}  // namespace mae_fuzz
