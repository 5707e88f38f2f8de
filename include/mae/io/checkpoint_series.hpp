// mae/io/checkpoint_series.hpp — the checkpoints of a run directory: the last K kept, and the
// newest valid one found again.
//
// A checkpoint of step s is written as DIR/checkpoint-<s>.safetensors (atomically), then
// DIR/checkpoint.safetensors is made the same file (a hard link swapped in by a rename; a copy
// where the filesystem has no hard links), then the oldest numbered ones beyond `keep` are
// removed. At every moment checkpoint.safetensors is a complete checkpoint, and a numbered one
// is removed only after a newer one is complete.
#ifndef MAE_IO_CHECKPOINT_SERIES_HPP
#define MAE_IO_CHECKPOINT_SERIES_HPP

#include "../core/common.hpp"
#include "checkpoint.hpp"
#include "files.hpp"
#include "safetensors.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

namespace mae {

inline constexpr char kCheckpointName[] = "checkpoint.safetensors";

// "checkpoint-<step>.safetensors" -> step; -1 for any other name.
inline Index numbered_checkpoint_step(const std::string& name) {
  const std::string pre = "checkpoint-", post = ".safetensors";
  if (name.size() <= pre.size() + post.size() || name.compare(0, pre.size(), pre) != 0 ||
      name.compare(name.size() - post.size(), post.size(), post) != 0)
    return -1;
  const std::string digits = name.substr(pre.size(), name.size() - pre.size() - post.size());
  if (digits.empty() || digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoll(digits);
}

// The numbered checkpoints of dir, newest (highest step) first.
inline std::vector<std::pair<Index, std::string>> numbered_checkpoints(const std::string& dir) {
  std::vector<std::pair<Index, std::string>> found;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const Index s = numbered_checkpoint_step(it->path().filename().string());
    if (s >= 0) found.emplace_back(s, it->path().string());
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return found;
}

// Writes the checkpoint of `step` (bytes of a safetensors file) into dir as the header says,
// keeping the `keep` newest numbered ones. Returns the numbered file's path.
inline std::string write_checkpoint_series(const std::string& dir, Index step, const std::string& bytes, int keep) {
  if (keep < 1) throw Error("keep at least 1 checkpoint, not " + std::to_string(keep));
  const std::string numbered = dir + "/checkpoint-" + std::to_string(step) + ".safetensors";
  const std::string latest = dir + "/" + kCheckpointName;
  write_file(numbered, bytes);
  const std::string tmp = temp_path_for(latest);
  std::remove(tmp.c_str());
  if (::link(numbered.c_str(), tmp.c_str()) != 0 || std::rename(tmp.c_str(), latest.c_str()) != 0) {
    std::remove(tmp.c_str());
    write_file(latest, bytes);  // no hard links here: a copy
  }
  const auto all = numbered_checkpoints(dir);
  for (std::size_t i = static_cast<std::size_t>(keep); i < all.size(); ++i) std::remove(all[i].second.c_str());
  return numbered;
}

// The newest checkpoint of dir that opens as a valid safetensors file (numbered ones newest
// first, then checkpoint.safetensors, which a run of an older mae wrote alone), or "" if there
// is none. `warn` hears of each corrupt one passed over.
template <class Warn>
inline std::string newest_valid_checkpoint(const std::string& dir, Warn&& warn) {
  std::vector<std::string> candidates;
  for (const auto& [step, path] : numbered_checkpoints(dir)) candidates.push_back(path);
  const std::string latest = dir + "/" + kCheckpointName;
  if (std::filesystem::exists(latest)) candidates.push_back(latest);
  for (const auto& path : candidates) {
    try {
      const safetensors::File f(path);
      require_metadata(f, keys::step, "training checkpoint");
      return path;
    } catch (const std::exception& e) {
      warn(std::string(e.what()));
    }
  }
  return "";
}

}  // namespace mae

#endif  // MAE_IO_CHECKPOINT_SERIES_HPP
