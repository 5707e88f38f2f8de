// The checks of the `mae` program's numbers and paths, at parse time, with the reason in words:
// "--lr: nan is not a finite number", "--epochs: 1e6 is not a whole number",
// "--threads: -1 is not between 0 and 8". CLI11's own range checks let NaN through (every
// comparison with NaN is false) and print their bounds as 1.79769e+308.
#pragma once

#include <mae/io/files.hpp>

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>

namespace mae_tool {

inline std::string number_text(double v) {
  char b[48];
  std::snprintf(b, sizeof b, "%.15g", v);
  return b;
}

inline constexpr double kNoLimit = std::numeric_limits<double>::infinity();

// A finite number in [lo, hi] (hi = kNoLimit: at least lo); lo_open: greater than lo.
inline CLI::Validator number(double lo, double hi = kNoLimit, bool lo_open = false) {
  const std::string range = hi == kNoLimit ? std::string(lo_open ? "greater than " : "at least ") + number_text(lo)
                                           : std::string(lo_open ? "greater than " : "from ") + number_text(lo) +
                                                 (lo_open ? " and at most " : " to ") + number_text(hi);
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        errno = 0;
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        if (s.empty() || end == s.c_str() || *end != '\0') return s + " is not a number";
        if (!std::isfinite(v) || errno == ERANGE) return s + " is not a finite number";
        if (v < lo || v > hi || (lo_open && v == lo)) return s + " is not " + range;
        return "";
      },
      "NUMBER " + range);
}

// A whole number in [lo, hi].
inline CLI::Validator whole(std::int64_t lo, std::int64_t hi = std::numeric_limits<std::int64_t>::max()) {
  const bool open = hi == std::numeric_limits<std::int64_t>::max();
  const std::string range =
      open ? "at least " + std::to_string(lo) : "from " + std::to_string(lo) + " to " + std::to_string(hi);
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        errno = 0;
        char* end = nullptr;
        const long long v = std::strtoll(s.c_str(), &end, 10);
        if (s.empty() || end == s.c_str() || *end != '\0') return s + " is not a whole number (" + range + ")";
        if (errno == ERANGE || v < lo || v > hi) return s + " is not " + range;
        return "";
      },
      "INTEGER " + range);
}

// A file to write: not empty, its directory exists, not a directory (mae::output_target).
inline CLI::Validator output_file() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        try {
          (void)mae::output_target(s);
        } catch (const std::exception& e) {
          const std::string m = e.what();
          return m.rfind("mae: ", 0) == 0 ? m.substr(5) : m;  // CLI11 names the option instead
        }
        return "";
      },
      "FILE");
}

// A directory to write into: a name, not an existing file.
inline CLI::Validator output_directory() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        if (s.empty()) return "an empty directory name";
        std::error_code ec;
        if (std::filesystem::exists(s, ec) && !std::filesystem::is_directory(s, ec))
          return s + " exists and is not a directory";
        return "";
      },
      "DIR");
}

}  // namespace mae_tool
