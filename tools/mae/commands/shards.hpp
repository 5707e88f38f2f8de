// mae shards: a folder of pictures written as WebDataset tar shards (mae::ShardWriter), so
// that a large dataset is read as a few large files: DIR/train and DIR/val become
// OUT/train/train-NNNNNN.tar and OUT/val/val-NNNNNN.tar, a folder without train/ becomes
// OUT/shard-NNNNNN.tar. Each sample is KEY.<the file's extension> (its bytes as they are,
// not re-encoded) and, when every picture is in a class directory, KEY.cls with OUT/classes.txt.
// The images are written in a seeded random order, so that a shard holds every class.
#pragma once

#include "common.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace mae_tool {

// A key from a picture's path under the folder: no extension, and no '.' (WebDataset's key
// ends at the first dot of the file name).
inline std::string shard_key(const std::filesystem::path& rel) {
  std::string key = (rel.parent_path() / rel.stem()).generic_string();
  const std::size_t slash = key.rfind('/');
  std::replace(key.begin() + static_cast<std::ptrdiff_t>(slash == std::string::npos ? 0 : slash + 1), key.end(), '.',
               '_');
  return key;
}

inline int write_shards(const ShardsArgs& a) {
  namespace fs = std::filesystem;
  set_threads(a.run);
  if (!fs::is_directory(a.data)) throw mae::Error("--data '" + a.data + "': not a directory");
  std::error_code ec;
  if (fs::exists(a.out) && !fs::is_empty(a.out, ec))
    throw mae::Error(a.out + ": exists and is not empty; give a new --out (shards are never written over)");
  const bool splits = fs::is_directory(fs::path(a.data) / "train");
  std::vector<std::string> classes;
  Stopwatch t;
  for (const std::string& split : splits ? std::vector<std::string>{"train", "val"} : std::vector<std::string>{""}) {
    const fs::path src = split.empty() ? fs::path(a.data) : fs::path(a.data) / split;
    if (!fs::is_directory(src)) continue;
    mae::ImageFolderOptions o;
    o.max_pixels = a.max_pixels;
    const mae::ImageFolder folder(src.string(), o);  // every header read: a bad picture stops here, named
    const auto names = folder.class_names();
    const bool labelled = !names.empty() && !names.front().empty();
    if (labelled && classes.empty()) classes = names;
    if (labelled && names != classes)
      throw mae::Error(src.string() + ": its class directories differ from train's; give both the same classes");
    std::vector<mae::Index> order(static_cast<std::size_t>(folder.size()));
    for (mae::Index i = 0; i < folder.size(); ++i) order[i] = i;
    mae::Rng r(mae::mix_seed(a.run.seed, 0x54a2d5));
    for (mae::Index i = folder.size() - 1; i > 0; --i)
      std::swap(order[i], order[static_cast<mae::Index>(r.next_u64() % std::uint64_t(i + 1))]);
    const fs::path dir = split.empty() ? fs::path(a.out) : fs::path(a.out) / split;
    fs::create_directories(dir);
    mae::ShardWriter w((dir / (split.empty() ? "shard" : split)).string(), a.per_shard);
    std::string previous;
    for (const mae::Index i : order) {
      const fs::path file = folder.item_name(i);
      std::string key = shard_key(file.lexically_relative(src));
      if (key == previous) key += "_" + std::to_string(i);  // a.b.jpg beside a_b.jpg
      previous = key;
      std::string ext = file.extension().string().substr(1);
      std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
      std::vector<std::pair<std::string, std::string>> members{{ext, mae::read_file(file.string())}};
      if (labelled) members.emplace_back("cls", std::to_string(folder.label(i)));
      w.add(key, members);
    }
    const auto written = w.finish();
    std::printf("%s: %lld images into %zu shards in %s%s\n", src.string().c_str(),
                static_cast<long long>(folder.size()), written.size(), dir.string().c_str(),
                labelled ? ", with labels" : "");
  }
  if (!classes.empty()) {
    std::string text;
    for (const auto& c : classes) text += c + "\n";
    mae::write_file((fs::path(a.out) / "classes.txt").string(), text);
    std::printf("%s: %zu classes\n", (fs::path(a.out) / "classes.txt").string().c_str(), classes.size());
  }
  std::printf("done in %.1f s\n", t.seconds());
  return 0;
}

}  // namespace mae_tool
