// mae/io/safetensors.hpp — read and write the safetensors format.
//
// File: 8 bytes little-endian u64 n, then n bytes of JSON header
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value", ...}}
// then the data buffer (offsets are relative to it). The header is parsed with nlohmann-json.
// Reading validates everything before anything is returned; writing goes through write_file
// (files.hpp): atomic for a regular file, straight through for a pipe or a device.
#ifndef MAE_IO_SAFETENSORS_HPP
#define MAE_IO_SAFETENSORS_HPP

#include "../core/common.hpp"
#include "../core/params.hpp"
#include "files.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

namespace mae {
namespace safetensors {

struct Entry {
  std::string dtype;  // "F32", "F64", ...
  Shape shape;
  std::size_t begin = 0, end = 0;  // byte offsets into the data buffer
};

inline std::size_t dtype_size(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL") return 1;
  return 0;
}

template <class S>
inline const char* dtype_name() {
  return std::is_same_v<S, double> ? "F64" : "F32";
}

inline bool host_is_little_endian() {
  const std::uint32_t one = 1;
  unsigned char b;
  std::memcpy(&b, &one, 1);
  return b == 1;
}

// A whole safetensors file in memory, validated by the rules of the format's reference
// implementation: a header of at most 100 MB that is a JSON object (its first byte '{'), no
// tensor named twice, each tensor's byte size (shape x dtype, checked for overflow) equal to
// its range, ranges that do not overlap and cover the data buffer without a hole.
class File {
 public:
  static constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

  explicit File(const std::string& path) : path_(path) {
    if (!host_is_little_endian()) fail("big-endian hosts are not supported");
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) fail("cannot open the file (" + std::string(std::strerror(errno)) + ")");
    const std::streamoff size = in.tellg();
    if (size < 0) fail("cannot tell the file's size");
    // the header's length first: a header over the cap is refused before the file is read
    // (a length beyond the file is parse()'s "truncated")
    if (size >= 8) {
      std::uint64_t n = 0;
      in.seekg(0);
      in.read(reinterpret_cast<char*>(&n), 8);
      if (n <= static_cast<std::uint64_t>(size) - 8 && n > kMaxHeaderBytes)
        fail("the header claims " + std::to_string(n) + " bytes, over the limit of " + std::to_string(kMaxHeaderBytes) +
             " (a corrupt or hostile file)");
    }
    bytes_.resize(static_cast<std::size_t>(size));
    in.seekg(0);
    in.read(bytes_.data(), size);
    if (!in) fail("read error");
    parse();
  }

  // A file's bytes already in memory (converted weights), validated by the same rules; `label`
  // names it in messages.
  static File from_bytes(std::string label, std::string bytes) {
    File f;
    f.path_ = std::move(label);
    f.bytes_.assign(bytes.begin(), bytes.end());
    f.parse();
    return f;
  }

  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::map<std::string, Entry>& tensors() const { return tensors_; }
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }

  const Entry& entry(const std::string& name) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) fail("tensor '" + name + "' is missing");
    return it->second;
  }

  // Copy tensor `name` into dst (converting F32/F64 to S) after checking its shape.
  template <class S>
  void read(const std::string& name, const Shape& expected, S* dst) const {
    const Entry& e = entry(name);
    if (e.shape != expected)
      fail("tensor '" + name + "' has shape " + shape_string(e.shape) + ", expected " + shape_string(expected));
    read_as(e, name, dst);
  }

  // The tensor as a vector of S, whatever its shape.
  template <class S>
  std::vector<S> read(const std::string& name, Shape* shape = nullptr) const {
    const Entry& e = entry(name);
    std::vector<S> out(static_cast<std::size_t>(shape_numel(e.shape)));
    read_as(e, name, out.data());
    if (shape) *shape = e.shape;
    return out;
  }

  [[noreturn]] void fail(const std::string& what) const { throw Error(path_ + ": " + what); }

 private:
  File() = default;
  template <class S>
  void read_as(const Entry& e, const std::string& name, S* dst) const {
    const char* src = bytes_.data() + data_start_ + e.begin;
    const std::size_t n = static_cast<std::size_t>(shape_numel(e.shape));
    if (e.dtype == "F32") {
      for (std::size_t i = 0; i < n; ++i) {
        float v;
        std::memcpy(&v, src + 4 * i, 4);
        dst[i] = static_cast<S>(v);
      }
    } else if (e.dtype == "F64") {
      for (std::size_t i = 0; i < n; ++i) {
        double v;
        std::memcpy(&v, src + 8 * i, 8);
        dst[i] = static_cast<S>(v);
      }
    } else if (e.dtype == "I64") {
      for (std::size_t i = 0; i < n; ++i) {
        std::int64_t v;
        std::memcpy(&v, src + 8 * i, 8);
        dst[i] = static_cast<S>(v);
      }
    } else {
      fail("tensor '" + name + "' has dtype " + e.dtype + "; only F32, F64 and I64 can be read");
    }
  }

  void parse() {
    const std::size_t size = bytes_.size();
    if (size < 8) fail("truncated: " + std::to_string(size) + " bytes, too short for a safetensors header");
    std::uint64_t n = 0;
    std::memcpy(&n, bytes_.data(), 8);
    if (n > size - 8)
      fail("truncated or not a safetensors file: the header claims " + std::to_string(n) + " bytes but the file has " +
           std::to_string(size - 8) + " after the length field");
    data_start_ = 8 + static_cast<std::size_t>(n);
    const std::size_t data_size = size - data_start_;
    if (n == 0 || bytes_[8] != '{') fail("corrupt header: it does not start with '{'");
    nlohmann::json header;
    std::string duplicate;
    std::set<std::string> names;
    // keys of the top-level object, seen as they are parsed: nlohmann keeps the last of two
    const nlohmann::json::parser_callback_t note_keys = [&](int depth, nlohmann::json::parse_event_t event,
                                                            nlohmann::json& parsed) {
      if (depth == 1 && event == nlohmann::json::parse_event_t::key && !names.insert(parsed.get<std::string>()).second)
        duplicate = parsed.get<std::string>();
      return true;
    };
    try {
      header = nlohmann::json::parse(bytes_.begin() + 8, bytes_.begin() + static_cast<std::ptrdiff_t>(data_start_),
                                     note_keys);
    } catch (const nlohmann::json::exception& e) {
      fail(std::string("corrupt header (not valid JSON): ") + e.what());
    }
    if (!duplicate.empty()) fail("corrupt header: '" + duplicate + "' appears twice");
    if (!header.is_object()) fail("corrupt header: not a JSON object");
    std::vector<std::pair<std::size_t, std::size_t>> ranges;
    for (auto it = header.begin(); it != header.end(); ++it) {
      const std::string& name = it.key();
      const auto& v = it.value();
      if (name == "__metadata__") {
        if (!v.is_object()) fail("corrupt header: __metadata__ is not an object");
        for (auto m = v.begin(); m != v.end(); ++m) {
          if (!m.value().is_string()) fail("corrupt header: metadata '" + m.key() + "' is not a string");
          metadata_[m.key()] = m.value().get<std::string>();
        }
        continue;
      }
      const std::string where = "tensor '" + name + "': ";
      if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
        fail(where + "header entry needs dtype, shape and data_offsets");
      Entry e;
      if (!v["dtype"].is_string()) fail(where + "dtype is not a string");
      e.dtype = v["dtype"].get<std::string>();
      const std::size_t esize = dtype_size(e.dtype);
      if (esize == 0) fail(where + "unknown dtype '" + e.dtype + "'");
      if (!v["shape"].is_array()) fail(where + "shape is not an array");
      std::uint64_t numel = 1;
      for (const auto& d : v["shape"]) {
        if (!d.is_number_integer() || d.get<std::int64_t>() < 0) fail(where + "shape holds a non-integer or negative");
        const auto dim = d.get<std::uint64_t>();
        if (dim != 0 && numel > (std::uint64_t{1} << 62) / dim) fail(where + "shape is absurdly large");
        numel *= dim;
        e.shape.push_back(static_cast<std::int64_t>(dim));
      }
      const auto& off = v["data_offsets"];
      if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
        fail(where + "data_offsets must be two non-negative integers");
      const auto b = off[0].get<std::uint64_t>(), en = off[1].get<std::uint64_t>();
      if (b > en) fail(where + "data_offsets are reversed");
      if (en > data_size)
        fail(where + "data ends at byte " + std::to_string(en) + " but the data buffer has " +
             std::to_string(data_size) + " bytes (truncated file?)");
      if (numel > std::numeric_limits<std::uint64_t>::max() / esize) fail(where + "shape is absurdly large");
      if (en - b != numel * esize)
        fail(where + "holds " + std::to_string(en - b) + " bytes but its shape " + shape_string(e.shape) +
             " and dtype " + e.dtype + " need " + std::to_string(numel * esize));
      e.begin = static_cast<std::size_t>(b);
      e.end = static_cast<std::size_t>(en);
      if (e.end > e.begin) ranges.emplace_back(e.begin, e.end);
      tensors_.emplace(name, std::move(e));
    }
    std::sort(ranges.begin(), ranges.end());
    for (std::size_t i = 1; i < ranges.size(); ++i)
      if (ranges[i].first < ranges[i - 1].second) {
        for (const auto& [name, e] : tensors_)
          if (e.begin == ranges[i].first && e.end == ranges[i].second)
            fail("tensor '" + name + "' overlaps another tensor");
        fail("two tensors overlap");
      }
    // no hole: the tensors cover the data buffer from its first byte to its last
    std::size_t covered = 0;
    for (const auto& [b, en] : ranges) {
      if (b != covered)
        fail("bytes " + std::to_string(covered) + ".." + std::to_string(b) + " of the data belong to no tensor");
      covered = en;
    }
    if (covered != data_size)
      fail("bytes " + std::to_string(covered) + ".." + std::to_string(data_size) + " of the data belong to no tensor");
  }

  std::string path_;
  std::vector<char> bytes_;
  std::size_t data_start_ = 0;
  std::map<std::string, Entry> tensors_;
  std::map<std::string, std::string> metadata_;
};

// One tensor to write: a name, a shape and contiguous data of type float or double.
struct TensorOut {
  std::string name;
  Shape shape;
  const void* data;
  std::string dtype;  // "F32" or "F64"
  template <class S>
  static TensorOut of(std::string name, Shape shape, const S* data) {
    static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>, "safetensors: float or double data");
    return TensorOut{std::move(name), std::move(shape), data, dtype_name<S>()};
  }
};

// The bytes of a safetensors file holding `tensors` (in the order given) and `metadata`.
inline std::string serialize(const std::vector<TensorOut>& tensors,
                             const std::map<std::string, std::string>& metadata) {
  if (!host_is_little_endian()) throw Error("big-endian hosts are not supported");
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = m;
  }
  std::size_t offset = 0;
  for (const auto& t : tensors) {
    const std::size_t nbytes = static_cast<std::size_t>(shape_numel(t.shape)) * dtype_size(t.dtype);
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string h = header.dump();
  while ((8 + h.size()) % 8 != 0) h.push_back(' ');  // align the data buffer to 8 bytes
  std::string out(8, '\0');
  const std::uint64_t n = h.size();
  std::memcpy(out.data(), &n, 8);
  out += h;
  out.reserve(out.size() + offset);
  for (const auto& t : tensors) {
    const std::size_t nbytes = static_cast<std::size_t>(shape_numel(t.shape)) * dtype_size(t.dtype);
    out.append(static_cast<const char*>(t.data), nbytes);
  }
  return out;
}

inline void save(const std::string& path, const std::vector<TensorOut>& tensors,
                 const std::map<std::string, std::string>& metadata = {}) {
  write_file(path, serialize(tensors, metadata));
}

}  // namespace safetensors
// A tensor to load: its name, the shape the model expects, where its values go.
template <class S>
struct TensorIn {
  std::string name;
  Shape shape;
  S* dst;
};

// Loads `wanted` from f, all or nothing: every tensor is checked (present, with the expected
// shape) and read into a staging copy before any destination is written, so a bad file
// leaves the model as it was. With strict, a tensor of the file that is neither wanted nor
// in `allowed` is an error too. Every value must be finite (the error names the tensor and
// the first bad index) unless allow_non_finite. `model` names the model in the messages.
template <class S>
inline void load_staged(const safetensors::File& f, const std::vector<TensorIn<S>>& wanted, bool strict,
                        const std::string& model, const std::vector<std::string>& allowed = {},
                        bool allow_non_finite = false) {
  std::vector<std::vector<S>> staged;
  staged.reserve(wanted.size());
  for (const auto& t : wanted) {
    if (!f.contains(t.name)) f.fail("tensor '" + t.name + "' is missing (a checkpoint of another model?)");
    if (f.entry(t.name).shape != t.shape)
      f.fail("tensor '" + t.name + "' has shape " + shape_string(f.entry(t.name).shape) + " but " + model +
             " expects " + shape_string(t.shape) + ": the checkpoint is for another configuration");
    staged.emplace_back(static_cast<std::size_t>(shape_numel(t.shape)));
    f.read(t.name, t.shape, staged.back().data());
    if (allow_non_finite) continue;  // for forensics: load a diverged run as it is
    const auto& v = staged.back();
    const auto bad = std::find_if(v.begin(), v.end(), [](S x) { return !std::isfinite(static_cast<double>(x)); });
    if (bad != v.end())
      f.fail("tensor '" + t.name + "' holds a non-finite value (" + std::to_string(static_cast<double>(*bad)) +
             ") at index " + std::to_string(bad - v.begin()) + ": the checkpoint is of a diverged run");
  }
  if (strict)
    for (const auto& entry : f.tensors()) {
      const std::string& name = entry.first;  // not a structured binding: C++17 lambdas cannot capture one
      const bool known =
          std::any_of(wanted.begin(), wanted.end(), [&](const TensorIn<S>& t) { return t.name == name; }) ||
          std::find(allowed.begin(), allowed.end(), name) != allowed.end();
      if (!known) f.fail("unexpected tensor '" + name + "' (not part of " + model + ")");
    }
  for (std::size_t i = 0; i < wanted.size(); ++i) std::copy(staged[i].begin(), staged[i].end(), wanted[i].dst);
}

// The tensors of a store, as TensorIn (optionally only those `keep(name)` accepts).
template <class S, class Keep>
inline std::vector<TensorIn<S>> store_tensors(TensorStore<S>& store, Keep&& keep) {
  std::vector<TensorIn<S>> out;
  for (const auto& t : store.tensors())
    if (keep(t.name)) out.push_back({t.name, t.shape, store.data() + t.offset});
  return out;
}
template <class S>
inline std::vector<TensorIn<S>> store_tensors(TensorStore<S>& store) {
  return store_tensors(store, [](const std::string&) { return true; });
}

}  // namespace mae

#endif  // MAE_IO_SAFETENSORS_HPP
