// mae/datasets/shards.hpp — WebDataset tar shards as a dataset: each sample is the run of
// consecutive members that share a key (the member's path up to the first '.' of its file
// name), its image under .jpg/.jpeg/.png/.webp (or any other image extension of
// image_folder.hpp), its label, if any, under .cls (an integer as text). Other members
// (.json, .txt, ...) are skipped.
//
// The shards are read through libarchive, once, when the dataset is built: in parallel over
// the shards, each read from start to end (sequential reads: the point of shards on a shared
// filesystem). What is kept per image is an index entry (ShardDataset::index_bytes(), plus
// its member name): the shard, where the image's bytes are in it, its size and label. A batch
// then reads each image by its offset and decodes it from memory, so every command (and every
// evaluation loop) works on shards as on a folder, and the training order can be WebDataset's:
// shard_ends() tells the loader (data/loader.hpp) where shards end, and it shuffles shards,
// gives each process its share and mixes samples through a shuffle buffer. That random access
// needs uncompressed tar: a compressed shard (.tar.gz) is refused with the way out.
//
// Class names, when a command needs them, come from `classes.txt` (line k names class k) or
// `classes.json` (a list, or an object of name -> index) in the shards' directory or its
// parent; without either, class k is named "k".
//
// Errors name the shard, and the member where there is one: not a tar, truncated, a sample
// without an image, an image that does not decode, and for labelled sets a sample without a
// label or one outside the classes.
//
// ShardWriter writes shards (the `mae shards` command converts a folder with it).
//
// Needs libarchive besides image_folder.hpp's libraries.
#ifndef MAE_DATASETS_SHARDS_HPP
#define MAE_DATASETS_SHARDS_HPP

#include "image_folder.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace mae {

// A shard's file name: .tar, or a compressed tar (.tar.gz, .tgz, .tar.zst, ...), which is
// taken in order to be refused with the way out.
inline bool is_shard_file(const std::filesystem::path& p) {
  const std::string name = p.filename().string();
  const auto ends = [&](const std::string& e) {
    return name.size() > e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0;
  };
  return ends(".tar") || ends(".tgz") || name.find(".tar.") != std::string::npos;
}

// A --data value as a list of shards: a brace pattern (`train-{000000..000099}.tar`, ranges
// zero-padded to the width of their first bound, or lists `{a,b}`; several braces combine),
// one .tar file, or a directory, whose .tar files are taken in name order. Every shard must exist.
// (Compressed tars are listed too, to be refused by name when read.)
inline std::vector<std::string> expand_shards(const std::string& spec) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  const std::size_t open = spec.find('{');
  if (open == std::string::npos) {
    if (fs::is_directory(spec)) {
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(spec, ec))
        if (e.is_regular_file() && is_shard_file(e.path())) out.push_back(e.path().string());
      if (ec) throw Error("shards '" + spec + "': " + ec.message());
      std::sort(out.begin(), out.end());
      if (out.empty()) throw Error("'" + spec + "' holds no .tar shards");
      return out;
    }
    if (!fs::exists(spec)) throw Error(spec + ": no such shard");
    return {spec};
  }
  const std::size_t close = spec.find('}', open);
  if (close == std::string::npos) throw Error("shards '" + spec + "': a '{' without its '}'");
  const std::string head = spec.substr(0, open), body = spec.substr(open + 1, close - open - 1),
                    tail = spec.substr(close + 1);
  std::vector<std::string> choices;
  const std::size_t dots = body.find("..");
  if (dots != std::string::npos) {  // {first..last}
    const std::string a = body.substr(0, dots), b = body.substr(dots + 2);
    const auto number = [&](const std::string& s) {
      if (s.empty() || s.size() > 12 ||
          !std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); }))
        throw Error("shards '" + spec + "': {" + body + "} is not a range of whole numbers");
      return std::stoll(s);
    };
    const long long lo = number(a), hi = number(b);
    if (hi < lo) throw Error("shards '" + spec + "': the range {" + body + "} runs backwards");
    if (hi - lo >= 10000000)
      throw Error("shards '" + spec + "': the range {" + body + "} names over 10 million shards");
    for (long long k = lo; k <= hi; ++k) {
      std::string s = std::to_string(k);
      if (s.size() < a.size()) s.insert(0, a.size() - s.size(), '0');
      choices.push_back(s);
    }
  } else {  // {a,b,c}
    std::stringstream ss(body);
    for (std::string item; std::getline(ss, item, ',');) choices.push_back(item);
  }
  for (const auto& c : choices)
    for (auto& s : expand_shards(head + c + tail)) out.push_back(std::move(s));
  return out;
}

// Is this --data value shards (rather than a folder of pictures)?
inline bool is_shard_spec(const std::string& spec) {
  namespace fs = std::filesystem;
  if (spec.find('{') != std::string::npos) return true;
  if (fs::is_regular_file(spec)) return is_shard_file(spec);
  return false;
}

namespace shard_detail {

using Archive = std::unique_ptr<archive, int (*)(archive*)>;

// WebDataset's split of a member path: the key up to the first '.' of the file name, the
// extension (lower case) after it.
inline void split_member(const std::string& path, std::string& key, std::string& ext) {
  const std::size_t slash = path.rfind('/');
  const std::size_t dot = path.find('.', slash == std::string::npos ? 0 : slash + 1);
  key = path.substr(0, dot);
  ext = dot == std::string::npos ? "" : path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
}

}  // namespace shard_detail

struct ShardOptions {
  ImageFolderOptions images;  // channels, max_side, max_pixels, as for a folder
  bool labelled = false;      // every sample needs a .cls within the classes
};

class ShardDataset : public ImageDataset {
 public:
  // What the index keeps per image, besides its member name.
  static constexpr std::size_t index_bytes() { return sizeof(Item); }

  ShardDataset(const std::string& spec, ShardOptions opt) : ShardDataset(spec, expand_shards(spec), opt) {}
  ShardDataset(std::string name, std::vector<std::string> shards, ShardOptions opt)
      : name_(std::move(name)), shards_(std::move(shards)), opt_(opt) {
    if (opt_.images.channels != 1 && opt_.images.channels != 3)
      throw Error("shards: channels must be 1 (gray) or 3 (RGB)");
    if (shards_.empty()) throw Error("shards '" + name_ + "': no shards");
    std::vector<Shard> read(shards_.size());
    parallel_for_first_error(static_cast<Index>(shards_.size()), 1,
                             [&](Index s) { read[static_cast<std::size_t>(s)] = index_shard(static_cast<int>(s)); });
    for (std::size_t s = 0; s < read.size(); ++s) {
      if (read[s].items.empty()) throw Error(shards_[s] + ": a shard without samples");
      for (auto& it : read[s].items) it.name += names_.size();
      names_ += read[s].names;
      items_.insert(items_.end(), read[s].items.begin(), read[s].items.end());
      ends_.push_back(static_cast<Index>(items_.size()));
    }
    read_classes();
    Fnv1a h;  // the shards' paths, sizes and times, for content_stamp
    for (const auto& s : shards_) h.file(std::filesystem::absolute(s).lexically_normal().string(), file_stamp(s));
    stamp_ = h.hex();
  }

  Index size() const override { return static_cast<Index>(items_.size()); }
  Index channels() const override { return opt_.images.channels; }
  Index height(Index i) const override { return items_[static_cast<std::size_t>(i)].h; }
  Index width(Index i) const override { return items_[static_cast<std::size_t>(i)].w; }
  int label(Index i) const override { return items_[static_cast<std::size_t>(i)].label; }
  std::string name() const override { return name_; }
  std::vector<std::string> class_names() const override { return classes_; }
  std::vector<Index> shard_ends() const override { return ends_; }
  // The index as bytes, for another process: from_index(index()) is the same dataset, made
  // without reading a shard (a JSON line: name, shards, classes, class file, stamp, counts;
  // then the items as they are in memory, then the member names).
  std::string index() const {
    const nlohmann::json head = {
        {"name", name_},   {"shards", shards_}, {"classes", classes_},    {"class_file", class_file_},
        {"stamp", stamp_}, {"ends", ends_},     {"items", items_.size()}, {"names", names_.size()}};
    std::string t = head.dump() + "\n";
    t.append(reinterpret_cast<const char*>(items_.data()), items_.size() * sizeof(Item));
    return t + names_;
  }
  static ShardDataset from_index(const std::string& bytes, ShardOptions opt) {
    static_assert(std::is_trivially_copyable_v<Item>, "shard items are sent between processes as bytes");
    const std::size_t nl = bytes.find('\n');
    if (nl == std::string::npos) throw Error("a shard index without its header line");
    const nlohmann::json head = nlohmann::json::parse(bytes.substr(0, nl));
    ShardDataset d(head.at("name").get<std::string>(), opt, Tag{});
    d.shards_ = head.at("shards").get<std::vector<std::string>>();
    d.classes_ = head.at("classes").get<std::vector<std::string>>();
    d.class_file_ = head.at("class_file").get<std::string>();
    d.stamp_ = head.at("stamp").get<std::string>();
    d.ends_ = head.at("ends").get<std::vector<Index>>();
    const auto n = head.at("items").get<std::size_t>(), names = head.at("names").get<std::size_t>();
    if (bytes.size() != nl + 1 + n * sizeof(Item) + names || d.ends_.size() != d.shards_.size() ||
        (n > 0 && d.ends_.back() != static_cast<Index>(n)))
      throw Error("a shard index of the wrong size");
    d.items_.resize(n);
    std::memcpy(static_cast<void*>(d.items_.data()), bytes.data() + nl + 1, n * sizeof(Item));
    d.names_ = bytes.substr(nl + 1 + n * sizeof(Item));
    return d;
  }

  // A hash of every shard's path, size and times: the statistics of these images are kept in an
  // image index (data/image_index.hpp) and found again while the shards are unchanged.
  std::string content_stamp() const override { return stamp_; }
  const std::vector<std::string>& shards() const { return shards_; }
  // "<shard>:<member>"
  std::string item_name(Index i) const override {
    const Item& it = items_[static_cast<std::size_t>(i)];
    return shards_[static_cast<std::size_t>(it.shard)] + ":" + std::string(names_.c_str() + it.name);
  }

  // A validation set whose shards carry no class names takes the training set's (labels are
  // numbers either way); every label must be one of them.
  void use_classes(const std::vector<std::string>& names) {
    for (std::size_t i = 0; i < items_.size(); ++i)
      if (items_[i].label >= static_cast<int>(names.size()))
        throw Error(item_name(static_cast<Index>(i)) + ": label " + std::to_string(items_[i].label) + " outside the " +
                    std::to_string(names.size()) + " classes of the training shards");
    classes_ = names;
  }
  bool has_class_file() const { return !class_file_.empty(); }

  void load(Index i, float* out) const override {
    const Item& it = items_[static_cast<std::size_t>(i)];
    const std::string where = item_name(i);
    std::vector<unsigned char> bytes;
    if (!read_bytes(shards_[static_cast<std::size_t>(it.shard)], it, bytes))
      throw Error(where + ": cannot read (the shard is shorter than when it was indexed)");
    const ImageSize expect{it.w0, it.h0};
    ImageSize s;
    const std::vector<unsigned char> px =
        decode_image_memory(bytes.data(), bytes.size(), where, static_cast<int>(channels()), &s, &expect);
    pixels_to_float(px.data(), s, it.h, it.w, channels(), out);
  }

 private:
  struct Tag {};
  ShardDataset(std::string name, ShardOptions opt, Tag) : name_(std::move(name)), opt_(opt) {}

  struct Item {               // (copied as bytes between processes: plain data only)
    std::int64_t offset = 0;  // of the image's bytes in the shard
    std::int64_t bytes = 0;   // their count
    std::size_t name = 0;     // of the member's path in names_
    int shard = 0, label = -1;
    int w0 = 0, h0 = 0;         // in the file
    std::int32_t h = 0, w = 0;  // as loaded (after shrinking)
  };
  struct Shard {
    std::vector<Item> items;
    std::string names;  // the members' paths, each ended by '\0'
  };

  // One pass over a shard: members grouped into samples, each image's header read (from its
  // first bytes; the whole image only when the header lies deeper), its offset derived from
  // where libarchive found the next header (a member's data ends there, padded to 512 bytes).
  Shard index_shard(int s) const {
    using namespace shard_detail;
    const std::string& path = shards_[static_cast<std::size_t>(s)];
    Archive a(archive_read_new(), archive_read_free);
    if (!a) throw Error(path + ": out of memory");
    archive_read_support_format_tar(a.get());
    archive_read_support_filter_all(a.get());  // to name a compressed shard, not to read it
    if (archive_read_open_filename(a.get(), path.c_str(), 1 << 16) != ARCHIVE_OK)
      throw Error(path + ": not a readable tar shard (" + error_of(a.get()) + ")");
    Shard out;
    std::string key, ext, sample_key;
    std::vector<std::string> sample_exts;
    Item pending;  // the current sample's image, if any
    int pending_rank = -1, pending_label = -1;
    bool has_label = false, open_sample = false;
    std::int64_t prev_bytes = -1;  // the last member's size, to place it when the next header is read
    Item* prev_image = nullptr;    // where that offset goes (an image member), or nothing

    const auto close_sample = [&] {
      if (!open_sample) return;
      if (pending_rank < 0) {
        std::string members;
        for (const auto& e : sample_exts) members += " ." + e;
        throw Error(path + ": sample '" + sample_key +
                    "' has no image (.jpg, .jpeg, .png or .webp); its members:" + members);
      }
      if (opt_.labelled && !has_label)
        throw Error(path + ": sample '" + sample_key + "' has no label (.cls), which a labelled command needs");
      pending.label = has_label ? pending_label : -1;
      out.items.push_back(pending);
      open_sample = false;
    };

    for (;;) {
      archive_entry* e = nullptr;
      const int r = archive_read_next_header(a.get(), &e);
      const std::int64_t here = archive_read_header_position(a.get());
      if (prev_bytes >= 0 && prev_image) prev_image->offset = here - ((prev_bytes + 511) / 512) * 512;
      prev_bytes = -1, prev_image = nullptr;
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) throw Error(path + ": not a readable tar shard (" + error_of(a.get()) + ")");
      if (archive_filter_count(a.get()) > 1)
        throw Error(path + ": a compressed shard (" + std::string(archive_filter_name(a.get(), 0)) +
                    "); mae reads each image by its place in the shard, so decompress it (gunzip, zstd -d) first");
      if (archive_entry_filetype(e) != AE_IFREG) continue;  // directories, links
      const char* p = archive_entry_pathname_utf8(e);
      if (!p) p = archive_entry_pathname(e);
      const std::string member = p ? p : "";
      split_member(member, key, ext);
      if (!open_sample || key != sample_key) {
        close_sample();
        open_sample = true, sample_key = key, sample_exts.clear();
        pending = Item{}, pending_rank = -1, has_label = false;
      }
      sample_exts.push_back(ext);
      const std::int64_t size = archive_entry_size(e);
      const int rank = image_extension_rank(ext);  // the sample's preferred image
      if (rank >= 0 && (pending_rank < 0 || rank < pending_rank)) {
        if (archive_entry_sparse_count(e) > 0) throw Error(path + ":" + member + ": a sparse tar member");
        if (size <= 0) throw Error(path + ":" + member + ": empty file (0 bytes), not an image");
        if (size > (std::int64_t{1} << 30)) throw Error(path + ":" + member + ": over 1 GiB, not an image");
        pending = scan_image(a.get(), path, member, size);
        pending.shard = s, pending.name = out.names.size();
        out.names += member, out.names += '\0';
        pending_rank = rank;
        prev_bytes = size, prev_image = &pending;
      } else if (ext == "cls") {
        if (size > 64) throw Error(path + ":" + member + ": a label of " + std::to_string(size) + " bytes");
        std::string text(static_cast<std::size_t>(size), '\0');
        if (archive_read_data(a.get(), text.data(), text.size()) != static_cast<la_ssize_t>(size))
          throw Error(path + ":" + member + ": truncated (" + error_of(a.get()) + ")");
        pending_label = parse_label(text, path + ":" + member), has_label = true;
      }
      // anything else is skipped by the next archive_read_next_header
    }
    close_sample();
    // the first image's bytes where the offset says: a check that the arithmetic above holds
    // for this shard (a tar writer that pads or places data otherwise is refused, not misread)
    if (!out.items.empty()) check_offset(path, out.items.front());
    return out;
  }

  Item scan_image(archive* a, const std::string& path, const std::string& member, std::int64_t size) const {
    // 16 KiB hold the header of nearly every PNG, JPEG and WebP; a TIFF's directory (often at
    // the end) or a JPEG's large EXIF block costs the whole member
    std::vector<unsigned char> head(static_cast<std::size_t>(std::min<std::int64_t>(size, 1 << 14)));
    read_data(a, head, 0, path, member);
    ImageSize s;
    try {
      s = read_image_size_memory(head.data(), head.size(), path + ":" + member);
    } catch (const Error&) {
      if (static_cast<std::int64_t>(head.size()) == size) throw;
      const std::size_t first = head.size();  // the header lies deeper (a JPEG's EXIF thumbnail, say)
      head.resize(static_cast<std::size_t>(size));
      read_data(a, head, first, path, member);
      s = read_image_size_memory(head.data(), head.size(), path + ":" + member);
    }
    Item it;
    it.bytes = size;
    it.w0 = s.width, it.h0 = s.height;
    const auto [h, w] = checked_size(path + ":" + member, s, opt_.images);
    it.h = static_cast<std::int32_t>(h), it.w = static_cast<std::int32_t>(w);
    return it;
  }

  static void read_data(archive* a, std::vector<unsigned char>& buf, std::size_t from, const std::string& path,
                        const std::string& member) {
    while (from < buf.size()) {
      const la_ssize_t n = archive_read_data(a, buf.data() + from, buf.size() - from);
      if (n <= 0) throw Error(path + ":" + member + ": truncated (" + error_of(a) + ")");
      from += static_cast<std::size_t>(n);
    }
  }

  // An image's bytes, read by their offset in the shard; false when the shard ends first.
  static bool read_bytes(const std::string& shard, const Item& it, std::vector<unsigned char>& bytes) {
    bytes.resize(static_cast<std::size_t>(it.bytes));
    const int fd = ::open(shard.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(shard + ": cannot open (" + std::strerror(errno) + ")");
    std::size_t got = 0;
    while (got < bytes.size()) {
      const ssize_t n = ::pread(fd, bytes.data() + got, bytes.size() - got, static_cast<off_t>(it.offset + got));
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    ::close(fd);
    return got == bytes.size();
  }

  void check_offset(const std::string& path, const Item& it) const {
    // the header read again by offset, as load() reads it, must agree with the one read
    // through libarchive
    std::vector<unsigned char> bytes;
    ImageSize s{};
    bool ok = read_bytes(path, it, bytes);
    try {
      if (ok) s = read_image_size_memory(bytes.data(), bytes.size(), path);
    } catch (const Error&) {
      ok = false;
    }
    if (!ok || s.width != it.w0 || s.height != it.h0)
      throw Error(path +
                  ": its members are not where a tar places them (an unusual tar writer?); rewrite it with "
                  "`mae shards`, GNU tar or Python's tarfile");
  }

  static int parse_label(const std::string& text, const std::string& where) {
    std::size_t a = 0, b = text.size();
    while (a < b && std::isspace(static_cast<unsigned char>(text[a]))) ++a;
    while (b > a && std::isspace(static_cast<unsigned char>(text[b - 1]))) --b;
    const std::string t = text.substr(a, b - a);
    if (t.empty() || t.size() > 9 || !std::all_of(t.begin(), t.end(), [](unsigned char c) { return std::isdigit(c); }))
      throw Error(where + ": the label '" + t + "' is not a class number (a whole number from 0)");
    return std::stoi(t);
  }

  static std::string error_of(archive* a) {
    const char* e = archive_error_string(a);
    return e ? e : "unknown error";
  }

  // classes.txt or classes.json beside the (first) shard, or in its parent directory.
  void read_classes() {
    namespace fs = std::filesystem;
    int max_label = -1;
    for (const auto& it : items_) max_label = std::max(max_label, it.label);
    const fs::path dir = fs::path(shards_.front()).parent_path();
    for (const fs::path& d : {dir, dir.parent_path()}) {
      for (const char* f : {"classes.txt", "classes.json"}) {
        const fs::path p = (d.empty() ? fs::path(".") : d) / f;
        if (fs::is_regular_file(p)) {
          class_file_ = p.string();
          classes_ = std::string(f) == "classes.txt" ? read_lines(p) : read_json_classes(p);
          break;
        }
      }
      if (!class_file_.empty()) break;
    }
    if (class_file_.empty()) {
      for (int k = 0; k <= max_label; ++k) classes_.push_back(std::to_string(k));
      return;
    }
    for (std::size_t i = 0; i < items_.size(); ++i)
      if (items_[i].label >= static_cast<int>(classes_.size()))
        throw Error(item_name(static_cast<Index>(i)) + ": label " + std::to_string(items_[i].label) + " outside the " +
                    std::to_string(classes_.size()) + " classes of " + class_file_);
  }
  static std::vector<std::string> read_lines(const std::filesystem::path& p) {
    std::ifstream f(p);
    std::vector<std::string> names;
    for (std::string line; std::getline(f, line);) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      if (!line.empty()) names.push_back(line);
    }
    if (names.empty()) throw Error(p.string() + ": no class names");
    return names;
  }
  static std::vector<std::string> read_json_classes(const std::filesystem::path& p) {
    std::ifstream f(p);
    const nlohmann::json j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
    std::vector<std::string> names;
    if (j.is_array()) {
      for (const auto& v : j) {
        if (!v.is_string()) throw Error(p.string() + ": a list of class names holds a non-string");
        names.push_back(v.get<std::string>());
      }
    } else if (j.is_object()) {  // name -> index
      names.resize(j.size());
      for (const auto& [k, v] : j.items()) {
        if (!v.is_number_integer() || v.get<long long>() < 0 ||
            v.get<long long>() >= static_cast<long long>(j.size()) ||
            !names[static_cast<std::size_t>(v.get<long long>())].empty())
          throw Error(p.string() + ": class '" + k + "' needs a distinct index from 0 to " +
                      std::to_string(j.size() - 1));
        names[static_cast<std::size_t>(v.get<long long>())] = k;
      }
    } else {
      throw Error(p.string() + ": not a JSON list of class names nor an object of name -> index");
    }
    if (names.empty()) throw Error(p.string() + ": no class names");
    return names;
  }

  std::string name_;
  std::vector<std::string> shards_;
  std::string stamp_;
  ShardOptions opt_;
  std::vector<Item> items_;
  std::string names_;
  std::vector<Index> ends_;
  std::vector<std::string> classes_;
  std::string class_file_;
};

// Writes samples into shards of at most `per_shard` samples each, `<prefix>-000000.tar`, ...:
// POSIX pax tar through libarchive, each shard written under a temporary name and renamed when
// complete.
class ShardWriter {
 public:
  ShardWriter(std::string prefix, Index per_shard) : prefix_(std::move(prefix)), per_shard_(per_shard) {
    if (per_shard <= 0) throw Error("shards: at least one sample per shard");
  }
  ~ShardWriter() {
    try {
      if (a_) archive_write_free(a_);
      if (!tmp_.empty()) std::remove(tmp_.c_str());
    } catch (...) {
    }
  }
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // One sample: its key, and its members as (extension, bytes).
  void add(const std::string& key, const std::vector<std::pair<std::string, std::string>>& members) {
    if (key.empty() || key.find('.', key.rfind('/') == std::string::npos ? 0 : key.rfind('/') + 1) != std::string::npos)
      throw Error("shards: the key '" + key + "' is empty or holds a '.' in its file name");
    if (!a_ || in_shard_ == per_shard_) start();
    for (const auto& [ext, bytes] : members) {
      std::unique_ptr<archive_entry, void (*)(archive_entry*)> e(archive_entry_new(), archive_entry_free);
      const std::string name = key + "." + ext;
      archive_entry_set_pathname_utf8(e.get(), name.c_str());
      archive_entry_set_size(e.get(), static_cast<la_int64_t>(bytes.size()));
      archive_entry_set_filetype(e.get(), AE_IFREG);
      archive_entry_set_perm(e.get(), 0644);
      if (archive_write_header(a_, e.get()) != ARCHIVE_OK ||
          archive_write_data(a_, bytes.data(), bytes.size()) != static_cast<la_ssize_t>(bytes.size()))
        throw Error(tmp_ + ": cannot write (" + std::string(archive_error_string(a_)) + ")");
    }
    ++in_shard_;
  }
  // Completes the last shard; returns every shard's path.
  std::vector<std::string> finish() {
    if (a_) close();
    return written_;
  }

 private:
  void start() {
    if (a_) close();
    char num[16];
    std::snprintf(num, sizeof num, "%06zu", written_.size());
    path_ = prefix_ + "-" + num + ".tar";
    tmp_ = path_ + ".partial";
    a_ = archive_write_new();
    archive_write_set_format_pax_restricted(a_);
    archive_write_set_bytes_in_last_block(a_, 1);
    if (archive_write_open_filename(a_, tmp_.c_str()) != ARCHIVE_OK)
      throw Error(tmp_ + ": cannot write (" + std::string(archive_error_string(a_)) + ")");
    in_shard_ = 0;
  }
  void close() {
    const bool ok = archive_write_close(a_) == ARCHIVE_OK;
    const std::string why = ok ? "" : archive_error_string(a_);
    archive_write_free(a_);
    a_ = nullptr;
    if (!ok) throw Error(tmp_ + ": cannot write (" + why + ")");
    std::error_code ec;
    std::filesystem::rename(tmp_, path_, ec);
    if (ec) throw Error(path_ + ": cannot write (" + ec.message() + ")");
    tmp_.clear();
    written_.push_back(path_);
  }

  std::string prefix_, path_, tmp_;
  Index per_shard_;
  Index in_shard_ = 0;
  archive* a_ = nullptr;
  std::vector<std::string> written_;
};

// Shards indexed once for all processes (p): the first reads them and sends the index to the
// others, which read no shard until they load images. One process (p.shares() false): the
// constructor's index.
inline std::unique_ptr<ShardDataset> open_shards(const std::string& spec, ShardOptions opt,
                                                 const DataParallel& p = {}) {
  return made_once<ShardDataset>(
      p, [&] { return std::make_unique<ShardDataset>(spec, opt); }, [](const ShardDataset& d) { return d.index(); },
      [&](const std::string& bytes) { return ShardDataset::from_index(bytes, opt); },
      "shards '" + spec + "': the first process could not index them (see its message)");
}

}  // namespace mae

#endif  // MAE_DATASETS_SHARDS_HPP
