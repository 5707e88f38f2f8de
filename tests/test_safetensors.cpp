// Weights I/O: round trip, PyTorch interchange, and every kind of bad file rejected with a
// message that names the problem, leaving the model untouched.
#include "test_util.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>

#include <sys/wait.h>
#include <unistd.h>

using mae::Index;
namespace fs = std::filesystem;

namespace {
using Tiny = mae::Config<8, 4, 1, 8, 1, 2, 8, 1, 2>;
using Other = mae::Config<8, 4, 1, 12, 1, 2, 8, 1, 2>;  // another width
using M = mae::MaskedAutoencoder<Tiny>;

using mae_test::slurp;
using mae_test::spit;
fs::path scratch(const std::string& name) {
  static const fs::path dir = mae_test::scratch_dir("safetensors");
  return dir / name;
}

// Splits a safetensors file into (header JSON, data) and joins them back.
std::pair<nlohmann::json, std::string> split(const std::string& bytes) {
  std::uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  return {nlohmann::json::parse(bytes.substr(8, n)), bytes.substr(8 + n)};
}
std::string join(const nlohmann::json& h, const std::string& data) {
  const std::string hs = h.dump();
  std::string out(8, '\0');
  const std::uint64_t n = hs.size();
  std::memcpy(out.data(), &n, 8);
  return out + hs + data;
}

// Loading `bytes` must throw a message containing `expect` and leave the model unchanged.
void expect_rejected(const std::string& bytes, const std::string& expect) {
  const fs::path p = scratch("bad.safetensors");
  spit(p, bytes);
  M m(M::Options{false, 99});
  const std::vector<float> before(m.parameters().data(), m.parameters().data() + m.parameters().size());
  INFO("expected message: " << expect);
  CHECK_THROWS_WITH_AS(m.load(p.string()), doctest::Contains(expect.c_str()), mae::Error);
  CHECK(std::vector<float>(m.parameters().data(), m.parameters().data() + m.parameters().size()) == before);
}
}  // namespace

TEST_CASE("safetensors: save and load round trip, bit for bit, atomically") {
  M a(M::Options{false, 1}), b(M::Options{false, 2});
  const fs::path p = scratch("roundtrip.safetensors");
  a.save(p.string());
  CHECK_FALSE(fs::exists(p.string() + ".tmp." + std::to_string(::getpid())));
  b.load(p.string());
  CHECK(std::memcmp(a.parameters().data(), b.parameters().data(), sizeof(float) * a.parameters().size()) == 0);
  // official names and shapes, conv-shaped patch embedding, fixed tables included
  const mae::safetensors::File f(p.string());
  CHECK(f.entry("patch_embed.proj.weight").shape == mae::Shape{8, 1, 4, 4});
  CHECK(f.entry("blocks.0.attn.qkv.weight").shape == mae::Shape{24, 8});
  CHECK(f.entry("pos_embed").shape == mae::Shape{1, 5, 8});
  CHECK(f.entry("decoder_pos_embed").shape == mae::Shape{1, 5, 8});
  CHECK(f.entry("mask_token").shape == mae::Shape{1, 1, 8});
  CHECK(f.entry("cls_token").dtype == "F32");
  CHECK(f.metadata().at("mae.config") == Tiny::name());
  CHECK(f.tensors().size() == a.parameters().tensors().size() + 2);
  // the same weights give the same loss
  std::vector<float> img(64, 0.1f), noise{0.4f, 0.3f, 0.2f, 0.1f};
  CHECK(a.forward(mae::images(img.data(), 1, 1, 8, 8), 0.75, noise.data()) ==
        b.forward(mae::images(img.data(), 1, 1, 8, 8), 0.75, noise.data()));
  // saving over an existing file replaces it whole
  b.save(p.string());
  CHECK(slurp(p).size() == fs::file_size(p));
}

TEST_CASE("safetensors: a double model saves F64 and a float model reads it") {
  mae::MaskedAutoencoder<Tiny::with_scalar<double>> d(
      mae::MaskedAutoencoder<Tiny::with_scalar<double>>::Options{false, 4});
  const fs::path p = scratch("double.safetensors");
  d.save(p.string());
  CHECK(mae::safetensors::File(p.string()).entry("norm.weight").dtype == "F64");
  M f;
  f.load(p.string());
  for (Index i = 0; i < f.parameters().size(); ++i)
    REQUIRE(f.parameters().data()[i] == static_cast<float>(d.parameters().data()[i]));
}

TEST_CASE("safetensors: bad files are rejected with a message naming the problem") {
  M good(M::Options{false, 1});
  const fs::path gp = scratch("good.safetensors");
  good.save(gp.string());
  const std::string bytes = slurp(gp);
  auto [header, data] = split(bytes);

  SUBCASE("missing file") {
    M m;
    CHECK_THROWS_WITH_AS(m.load(scratch("does_not_exist.safetensors").string()), doctest::Contains("cannot open"),
                         mae::Error);
  }
  SUBCASE("empty file") { expect_rejected("", "too short"); }
  SUBCASE("truncated data") { expect_rejected(bytes.substr(0, bytes.size() - 10), "truncated"); }
  SUBCASE("truncated header") { expect_rejected(bytes.substr(0, 40), "truncated"); }
  SUBCASE("header length beyond the file") {
    std::string b = bytes;
    const std::uint64_t huge = 1ull << 40;
    std::memcpy(b.data(), &huge, 8);
    expect_rejected(b, "truncated or not a safetensors file");
  }
  SUBCASE("corrupt JSON") {
    std::string b = bytes;
    b[9] = '#';
    expect_rejected(b, "not valid JSON");
  }
  SUBCASE("wrong dtype") {
    auto h = header;
    h["norm.weight"]["dtype"] = "I32";
    expect_rejected(join(h, data), "tensor 'norm.weight' has dtype I32");
  }
  SUBCASE("unknown dtype") {
    auto h = header;
    h["norm.weight"]["dtype"] = "Q7";
    expect_rejected(join(h, data), "unknown dtype 'Q7'");
  }
  SUBCASE("shape that does not match its bytes") {
    auto h = header;
    h["norm.weight"]["shape"] = {9};
    expect_rejected(join(h, data), "tensor 'norm.weight': holds 32 bytes but its shape [9]");
  }
  SUBCASE("offsets outside the data") {
    auto h = header;
    const std::uint64_t end = data.size() + 4;
    h["norm.bias"]["data_offsets"] = {end - 32, end};
    expect_rejected(join(h, data), "tensor 'norm.bias': data ends at byte");
  }
  SUBCASE("overlapping tensors") {
    auto h = header;
    h["norm.bias"]["data_offsets"] = h["norm.weight"]["data_offsets"];
    expect_rejected(join(h, data), "overlaps");
  }
  SUBCASE("a tensor missing") {
    auto h = header;
    const auto off = h["decoder_pred.bias"]["data_offsets"];
    REQUIRE(off[1].get<std::size_t>() == data.size());  // the last tensor: its bytes go too (no hole)
    h.erase("decoder_pred.bias");
    expect_rejected(join(h, data.substr(0, off[0].get<std::size_t>())), "tensor 'decoder_pred.bias' is missing");
  }
  SUBCASE("an unexpected tensor") {
    auto h = header;
    h["head.weight"] = h["norm.weight"];
    h["head.weight"]["data_offsets"] = {data.size(), data.size() + 32};
    expect_rejected(join(h, data + std::string(32, '\0')), "unexpected tensor 'head.weight'");
  }
  SUBCASE("a checkpoint of another configuration, with our metadata") {
    mae::MaskedAutoencoder<Other> other;
    const fs::path op = scratch("other.safetensors");
    other.save(op.string());
    expect_rejected(slurp(op),
                    "checkpoint is for another configuration (" + Other::name() + "); this model is " + Tiny::name());
  }
  SUBCASE("a checkpoint of another configuration, without metadata (as converted from PyTorch)") {
    mae::MaskedAutoencoder<Other> other;
    const fs::path op = scratch("other.safetensors");
    other.save(op.string());
    auto [h, d] = split(slurp(op));
    h.erase("__metadata__");
    expect_rejected(join(h, d), "tensor 'pos_embed' has shape [1, 5, 12] but " + Tiny::name() + " expects [1, 5, 8]");
  }
}

TEST_CASE("safetensors: the reference implementation's rules (issue 18)") {
  M good(M::Options{false, 3});
  const fs::path gp = scratch("rules.safetensors");
  good.save(gp.string());
  const std::string bytes = slurp(gp);
  auto raw = [](const std::string& header, const std::string& data) {  // a header as written, not re-dumped
    std::string out(8, '\0');
    const std::uint64_t n = header.size();
    std::memcpy(out.data(), &n, 8);
    return out + header + data;
  };
  SUBCASE("a header over 100 MB is refused before it is read") {
    // a sparse file of 200 MB + 8 whose length field claims a 200 MB header
    const fs::path p = scratch("big_header.safetensors");
    std::string b(8, '\0');
    const std::uint64_t n = 200'000'000;
    std::memcpy(b.data(), &n, 8);
    spit(p, b);
    fs::resize_file(p, 8 + n);
    M m;
    CHECK_THROWS_WITH_AS(m.load(p.string()), doctest::Contains("over the limit of 100000000"), mae::Error);
    fs::remove(p);
  }
  SUBCASE("a header that does not start with '{'") {
    expect_rejected(raw(" {}", ""), "does not start with '{'");
    expect_rejected(raw("[1, 2]", ""), "does not start with '{'");
  }
  SUBCASE("a tensor named twice") {
    expect_rejected(raw(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},)"
                        R"( "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                        std::string(8, '\0')),
                    "'a' appears twice");
  }
  SUBCASE("a shape whose byte size overflows") {
    expect_rejected(raw(R"({"a": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 0]}})", ""),
                    "absurdly large");
  }
  SUBCASE("bytes that belong to no tensor (a hole, or a tail)") {
    expect_rejected(raw(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", std::string(8, '\0')),
                    "bytes 0..4 of the data belong to no tensor");
    expect_rejected(raw(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", std::string(12, '\0')),
                    "bytes 4..12 of the data belong to no tensor");
  }
}

TEST_CASE("safetensors: a checkpoint holding NaN or Inf is refused, naming the tensor, unless allowed") {
  M bad(M::Options{false, 4});
  bad.parameters().ptr("blocks.0.mlp.fc1.weight")[17] = std::numeric_limits<float>::quiet_NaN();
  const fs::path p = scratch("nan.safetensors");
  bad.save(p.string());
  M m(M::Options{false, 5});
  const std::vector<float> before(m.parameters().data(), m.parameters().data() + m.parameters().size());
  CHECK_THROWS_WITH_AS(m.load(p.string()),
                       doctest::Contains("tensor 'blocks.0.mlp.fc1.weight' holds a non-finite value (nan) at index 17"),
                       mae::Error);
  CHECK(std::vector<float>(m.parameters().data(), m.parameters().data() + m.parameters().size()) == before);
  m.load(p.string(), /*strict=*/true, /*allow_non_finite=*/true);
  CHECK(std::isnan(m.parameters().ptr("blocks.0.mlp.fc1.weight")[17]));
}

TEST_CASE("safetensors: a killed writer's temporary file is removed by the next write; a live one's is kept") {
  const fs::path p = scratch("stale.safetensors");
  const fs::path dead = p.string() + ".tmp.999999999", alive = p.string() + ".tmp.1", other = p.string() + ".tmp.x";
  pid_t gone = 0;  // a pid that no longer exists: a child that has exited and been reaped
  if ((gone = ::fork()) == 0) ::_exit(0);
  int status = 0;
  ::waitpid(gone, &status, 0);
  const fs::path reaped = p.string() + ".tmp." + std::to_string(gone);
  for (const auto& f : {dead, alive, other, reaped}) spit(f, "partial");
  M(M::Options{false, 6}).save(p.string());
  CHECK_FALSE(fs::exists(reaped));  // its writer is dead
  CHECK_FALSE(fs::exists(dead));    // no such process
  CHECK(fs::exists(alive));         // pid 1 is alive: never touched
  CHECK(fs::exists(other));         // not a pid
  CHECK(fs::exists(p));
  CHECK(mae::safetensors::File(p.string()).contains("cls_token"));
}

TEST_CASE("safetensors: a training run's start removes every dead writer's temporary file of its directory") {
  // a figure of an epoch that a resumed run does not repeat is never written again, so only a
  // sweep of the whole directory removes its temporary file (a CI finding of the crash test)
  const fs::path dir = scratch("stale_dir");
  fs::remove_all(dir);
  fs::create_directories(dir);
  pid_t gone = 0;
  if ((gone = ::fork()) == 0) ::_exit(0);
  int status = 0;
  ::waitpid(gone, &status, 0);
  const std::string dead = ".tmp." + std::to_string(gone);
  const fs::path png = dir / ("reconstruction_epoch010.png" + dead), dat = dir / ("loss.png.dat" + dead),
                 ckpt = dir / ("checkpoint.safetensors" + dead), alive = dir / "loss.png.tmp.1",
                 mine = dir / mae::temp_path_for("log.csv"), bare = dir / (".tmp." + std::to_string(gone)),
                 other = dir / "notes.tmp.txt", plain = dir / "log.csv";
  for (const auto& f : {png, dat, ckpt, alive, mine, bare, other, plain}) spit(f, "partial");
  mae::remove_stale_temp_files_in(dir.string());
  CHECK_FALSE(fs::exists(png));
  CHECK_FALSE(fs::exists(dat));
  CHECK_FALSE(fs::exists(ckpt));
  CHECK(fs::exists(alive));  // pid 1 is alive
  CHECK(fs::exists(mine));   // this process is alive
  CHECK(fs::exists(bare));   // no target name: not ours
  CHECK(fs::exists(other));  // not a pid
  CHECK(fs::exists(plain));
}

TEST_CASE("safetensors: a write that cannot happen leaves the old file intact") {
  M a(M::Options{false, 1});
  CHECK_THROWS_WITH_AS(a.save("/nonexistent-dir/x.safetensors"), doctest::Contains("cannot create"), mae::Error);
  // a write that fails after the file was created says whether an older file is still there
  if (fs::exists("/dev/full")) {
    const fs::path dir = scratch("full");
    fs::create_directories(dir);
    // the temporary file is a symlink to /dev/full: every write fails with ENOSPC
    const fs::path target = dir / "c.safetensors";
    fs::create_symlink("/dev/full", target.string() + ".tmp." + std::to_string(::getpid()));
    CHECK_THROWS_WITH_AS(a.save(target.string()), doctest::Contains("no file was written"), mae::Error);
    spit(target, "old");
    fs::create_symlink("/dev/full", target.string() + ".tmp." + std::to_string(::getpid()));
    CHECK_THROWS_WITH_AS(a.save(target.string()), doctest::Contains("the previous file is untouched"), mae::Error);
    CHECK(slurp(target) == "old");
  }
}

TEST_CASE("PyTorch loads our checkpoint and computes the same loss") {
  if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) {
    MESSAGE("python3-torch is not installed: skipped (apt-get install python3-torch)");
    return;
  }
  using C = mae::Config<12, 4, 3, 24, 2, 3, 16, 1, 2>;
  mae::MaskedAutoencoder<C> m(mae::MaskedAutoencoder<C>::Options{true, 5});
  const Index N = 2, L = C::num_patches;
  std::vector<float> img(N * 3 * 12 * 12), noise(N * L);
  mae::Rng r(6);
  for (auto& v : img) v = static_cast<float>(r.normal());
  for (auto& v : noise) v = static_cast<float>(r.uniform());
  const float loss = m.forward(mae::images(img.data(), N, 3, 12, 12), 0.75, noise.data());
  const fs::path ckpt = scratch("for_torch.safetensors"), io = scratch("for_torch_io.safetensors");
  m.save(ckpt.string());
  mae::safetensors::save(io.string(), {mae::safetensors::TensorOut::of<float>("imgs", {N, 3, 12, 12}, img.data()),
                                       mae::safetensors::TensorOut::of<float>("noise", {N, L}, noise.data()),
                                       mae::safetensors::TensorOut::of<float>("loss", {1}, &loss)});
  const std::string cmd = "/usr/bin/python3 " + std::string(MAE_SOURCE_DIR) + "/tests/torch_load_check.py " +
                          ckpt.string() + " " + io.string() + " 12 4 3 24 2 3 16 1 2 0.75 1";
  CHECK(std::system(cmd.c_str()) == 0);
}
