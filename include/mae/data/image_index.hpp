// mae/data/image_index.hpp — what a run's start-up learns about its image files, kept in a file
// between runs so that the next start-up reads only what changed: each file's header (width,
// height), stamped with the file's size, modification and change times when it was read, and
// the images' statistics (dataset_mean_std), keyed by the images and settings they came from.
//
//   ImageIndexCache cache("runs/a/image_index.txt");  // read when it exists
//   ImageFolder train(dir, opt, &cache);               // a header is read only where the stamp differs
//   dataset_mean_std(train, mean, stddev, 10000, {}, &cache);
//   cache.save();                                      // atomically, when something changed
//
// Files are named by absolute path, so one index may serve several folders (train/ and val/, or
// the folders of several runs); a folder that is scanned again replaces its own entries only.
// A stamp that matches is trusted: a file rewritten with its size and both times put back would
// keep its old header (and a size that no longer matches is refused when the image is read).
//
// The file is text, one line per entry, paths last (with \ and newline escaped):
//   mae image index 1
//   f <bytes> <mtime ns> <ctime ns> <width> <height> <absolute path>
//   s <key> <channels> <mean...> <std...>
// A file that does not begin with that line is refused (a mistyped name is not overwritten);
// one that begins with it but does not parse is rebuilt, with a note. Needs no library.
#ifndef MAE_DATA_IMAGE_INDEX_HPP
#define MAE_DATA_IMAGE_INDEX_HPP

#include "../core/common.hpp"
#include "../io/files.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <sys/stat.h>

namespace mae {

// A file as stat(2) sees it: what says whether its header may have changed.
struct FileStamp {
  std::uint64_t bytes = 0;
  std::int64_t mtime_ns = 0, ctime_ns = 0;
  bool operator==(const FileStamp& o) const {
    return bytes == o.bytes && mtime_ns == o.mtime_ns && ctime_ns == o.ctime_ns;
  }
};

// FNV-1a, 64 bits: the hash of a dataset's fingerprint, its content stamp and its statistics
// key. field() ends a string with a byte no name holds, so that fields do not run together.
struct Fnv1a {
  std::uint64_t h = 0xcbf29ce484222325ull;
  void bytes(const void* p, std::size_t n) {
    for (std::size_t j = 0; j < n; ++j) h = (h ^ static_cast<const unsigned char*>(p)[j]) * 0x100000001b3ull;
  }
  void field(const std::string& s) {
    bytes(s.data(), s.size());
    const unsigned char end = 0xff;
    bytes(&end, 1);
  }
  // A file as it is now: its path (with its terminating 0) and stamp.
  void file(const std::string& path, const FileStamp& st) {
    bytes(path.c_str(), path.size() + 1);
    bytes(&st, sizeof st);
  }
  std::string hex() const {
    char s[20];
    std::snprintf(s, sizeof s, "%016llx", static_cast<unsigned long long>(h));
    return s;
  }
};

// path's stamp (following symlinks); throws naming the path when it cannot be read.
inline FileStamp file_stamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw Error(path + ": cannot read (" + std::strerror(errno) + ")");
  const auto ns = [](const timespec& t) { return static_cast<std::int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec; };
  return {static_cast<std::uint64_t>(st.st_size), ns(st.st_mtim), ns(st.st_ctim)};
}

// A path in an index line: \ and newline escaped, so that it can end a line.
inline std::string escape_path(const std::string& p) {
  std::string s;
  s.reserve(p.size());
  for (char c : p) {
    if (c == '\\')
      s += "\\\\";
    else if (c == '\n')
      s += "\\n";
    else
      s += c;
  }
  return s;
}
// The inverse; nullopt for a dangling or unknown escape.
inline std::optional<std::string> unescape_path(const std::string& s) {
  std::string p;
  p.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      p += s[i];
      continue;
    }
    if (++i == s.size()) return std::nullopt;
    if (s[i] == '\\')
      p += '\\';
    else if (s[i] == 'n')
      p += '\n';
    else
      return std::nullopt;
  }
  return p;
}

class ImageIndexCache {
 public:
  static constexpr const char* kFirstLine = "mae image index 1";

  struct Header {
    FileStamp stamp;
    int width = 0, height = 0;
  };

  // The index in `path`, when the file exists (an empty path: an index that is never saved).
  explicit ImageIndexCache(std::string path = "") : path_(std::move(path)) {
    if (path_.empty()) return;
    std::error_code ec;
    if (!std::filesystem::exists(path_, ec)) return;
    if (std::filesystem::is_directory(path_, ec))
      throw Error("image index '" + path_ + "' is a directory; name a file (or 'none')");
    const std::string text = read_file(path_);
    const std::size_t first = text.find('\n');
    if (text.compare(0, first, kFirstLine) != 0)
      throw Error("'" + path_ + "' is not an image index written by mae (its first line is not '" + kFirstLine +
                  "'); it is left as it is: name another file, or remove it");
    if (const std::string why = parse(text, first == std::string::npos ? text.size() : first + 1); !why.empty()) {
      std::fprintf(stderr, "note: image index '%s': %s; every header is read again and the index rewritten\n",
                   path_.c_str(), why.c_str());
      files_.clear(), stats_.clear();
      changed_ = true;
    }
  }

  const std::string& path() const { return path_; }

  // The header saved for an absolute path, when its stamp is still `now`.
  std::optional<Header> find(const std::string& path, const FileStamp& now) const {
    const auto it = files_.find(path);
    if (it == files_.end() || !(it->second.stamp == now)) return std::nullopt;
    return it->second;
  }

  // A folder scanned again: its entries become `headers` (absolute path -> header), and the
  // entries of files under `root` that are gone are dropped. all_found: every header was found
  // here (find), so nothing changed unless files are gone.
  void replace_folder(const std::string& root, std::vector<std::pair<std::string, Header>> headers,
                      bool all_found = false) {
    std::string prefix = root;
    if (prefix.empty() || prefix.back() != '/') prefix += '/';
    if (all_found) {
      std::size_t under = 0;
      for (const auto& e : files_) under += e.first.compare(0, prefix.size(), prefix) == 0;
      if (under == headers.size()) return;
    }
    std::unordered_set<std::string> now;
    for (auto& [p, h] : headers) now.insert(p);
    for (auto it = files_.begin(); it != files_.end();)
      if (it->first.compare(0, prefix.size(), prefix) == 0 && !now.count(it->first))
        it = files_.erase(it), changed_ = true;
      else
        ++it;
    for (auto& [p, h] : headers) {
      auto [it, added] = files_.emplace(p, h);
      if (!added && it->second.stamp == h.stamp && it->second.width == h.width && it->second.height == h.height)
        continue;
      it->second = h, changed_ = true;
    }
  }

  // Statistics saved under a key (dataset_mean_std's: the images and settings they came from).
  std::optional<std::vector<double>> statistics(const std::string& key) const {
    const auto it = stats_.find(key);
    if (it == stats_.end()) return std::nullopt;
    return it->second;
  }
  void keep_statistics(const std::string& key, const std::vector<double>& values) {
    if (key.empty() || key.find_first_of(" \n") != std::string::npos) throw Error("image index: a bad statistics key");
    auto& v = stats_[key];
    if (v != values) v = values, changed_ = true;
  }

  Index files() const { return static_cast<Index>(files_.size()); }
  bool changed() const { return changed_; }

  // Writes the index (atomically), when it has a path and something changed.
  void save() {
    if (path_.empty() || !changed_) return;
    std::string out = std::string(kFirstLine) + "\n";
    char buf[128];
    std::vector<const std::pair<const std::string, Header>*> sorted;  // in path order
    for (const auto& e : files_) sorted.push_back(&e);
    std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->first < b->first; });
    for (const auto* e : sorted) {
      const auto& [p, h] = *e;
      std::snprintf(buf, sizeof buf, "f %llu %lld %lld %d %d ", static_cast<unsigned long long>(h.stamp.bytes),
                    static_cast<long long>(h.stamp.mtime_ns), static_cast<long long>(h.stamp.ctime_ns), h.width,
                    h.height);
      out += buf, out += escape_path(p), out += '\n';
    }
    for (const auto& [key, v] : stats_) {
      out += "s " + key + " " + std::to_string(v.size() / 2);
      for (double x : v) std::snprintf(buf, sizeof buf, " %.17g", x), out += buf;
      out += '\n';
    }
    write_file(path_, out);
    changed_ = false;
  }

 private:
  // The lines after the first; "" when they all parse, else what is wrong (and where).
  std::string parse(const std::string& text, std::size_t pos) {
    files_.reserve(
        static_cast<std::size_t>(std::count(text.begin() + static_cast<std::ptrdiff_t>(pos), text.end(), '\n')));
    Index line = 1;
    while (pos < text.size()) {
      ++line;
      std::size_t end = text.find('\n', pos);
      if (end == std::string::npos) return "line " + std::to_string(line) + " is cut short (the file is truncated)";
      const std::string l = text.substr(pos, end - pos);
      pos = end + 1;
      if (!parse_line(l)) return "line " + std::to_string(line) + " does not parse";
    }
    return "";
  }
  // A whole number and the space after it, at *s (advanced past both); false if there is none.
  static bool number(const char*& s, long long& v) {
    if (*s != '-' && (*s < '0' || *s > '9')) return false;
    char* end = nullptr;
    errno = 0;
    v = std::strtoll(s, &end, 10);
    if (errno != 0 || *end != ' ') return false;
    s = end + 1;
    return true;
  }
  bool parse_line(const std::string& l) {
    if (l.compare(0, 2, "f ") == 0) {  // (by hand: a million lines are read at every start)
      const char* s = l.c_str() + 2;
      long long bytes = 0, mtime = 0, ctime = 0, width = 0, height = 0;
      if (!number(s, bytes) || !number(s, mtime) || !number(s, ctime) || !number(s, width) || !number(s, height))
        return false;
      if (bytes < 0 || width <= 0 || height <= 0 || width > INT32_MAX || height > INT32_MAX) return false;
      const auto p = unescape_path(s);
      if (!p || p->empty() || p->front() != '/') return false;
      files_[*p] =
          Header{{static_cast<std::uint64_t>(bytes), mtime, ctime}, static_cast<int>(width), static_cast<int>(height)};
      return true;
    }
    std::istringstream in(l);
    std::string kind;
    in >> kind;
    if (kind == "s") {
      std::string key;
      Index channels = 0;
      if (!(in >> key >> channels) || channels < 1 || channels > 4) return false;
      std::vector<double> v(static_cast<std::size_t>(2 * channels));
      for (double& x : v)
        if (!(in >> x)) return false;
      std::string extra;
      if (in >> extra) return false;
      stats_[key] = v;
      return true;
    }
    return false;
  }

  std::string path_;
  std::unordered_map<std::string, Header> files_;  // by absolute path
  std::map<std::string, std::vector<double>> stats_;
  bool changed_ = false;
};

}  // namespace mae

#endif  // MAE_DATA_IMAGE_INDEX_HPP
