// datasets/shards.hpp: WebDataset tar shards written by Python's tarfile
// (tests/make_shard_fixtures.py), read as a dataset, refused by name when bad; the loader's
// shard order (data/loader.hpp); ShardWriter's shards read back.
#include "test_util.hpp"

#include <mae/data.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

using mae::Index;
namespace fs = std::filesystem;

// the text holds the part (and says what it was when not)
#define CHECK_CONTAINS(text, part)                                                                    \
  do {                                                                                                \
    const std::string text_ = (text);                                                                 \
    CHECK_MESSAGE(text_.find(part) != std::string::npos, "'" << text_ << "' lacks '" << part << "'"); \
  } while (0)

namespace {
const std::string kShards = std::string(MAE_FIXTURE_DIR) + "/shards";
const std::string kImages = std::string(MAE_FIXTURE_DIR) + "/images";

mae::ShardOptions options(Index channels = 3, bool labelled = false) {
  mae::ShardOptions o;
  o.images.channels = channels, o.labelled = labelled;
  return o;
}

nlohmann::json manifest() {
  std::ifstream f(kShards + "/manifest.json");
  return nlohmann::json::parse(f);
}

// The message of the mae::Error that f throws ("" if none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const mae::Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("shards: samples grouped by key, labels and class names read, every image the file's own pixels") {
  const auto m = manifest();
  for (const Index C : {Index{3}, Index{1}}) {
    const mae::ShardDataset ds(kShards + "/good/train", options(C, /*labelled=*/true));
    REQUIRE(ds.size() == 24);
    CHECK(ds.shard_ends() == std::vector<Index>{8, 16, 24});
    CHECK(ds.class_names() == std::vector<std::string>{"cat", "dog", "bird"});
    Index i = 0;
    for (const char* shard :
         {"good/train/train-000000.tar", "good/train/train-000001.tar", "good/train/train-000002.tar"})
      for (const auto& row : m[shard]) {
        const std::string picture = row["picture"], key = row["key"];
        INFO(picture);
        CHECK(ds.label(i) == row["label"].get<int>());
        CHECK(ds.item_name(i) == kShards + "/" + shard + ":" + key + picture.substr(picture.rfind('.')));
        // the same bytes decoded from the file: offsets and the decode from memory are exact
        mae::ImageFolderOptions fo;
        fo.channels = C;
        const mae::ImageFolder file(std::vector<std::string>{kImages + "/" + picture}, fo);
        REQUIRE(ds.height(i) == file.height(0));
        REQUIRE(ds.width(i) == file.width(0));
        std::vector<float> a(static_cast<std::size_t>(C * ds.height(i) * ds.width(i))), b(a.size());
        ds.load(i, a.data());
        file.load(0, b.data());
        CHECK(a == b);
        ++i;
      }
    CHECK(i == 24);
  }
}

TEST_CASE("shards: a brace pattern, a list, one file or a directory name the same shards; a missing one is named") {
  const std::string dir = kShards + "/good/train";
  const auto all = mae::expand_shards(dir);
  REQUIRE(all.size() == 3);
  CHECK(mae::expand_shards(dir + "/train-{000000..000002}.tar") == all);
  CHECK(mae::expand_shards(dir + "/train-{000000,000002}.tar") == std::vector<std::string>{all[0], all[2]});
  CHECK(mae::expand_shards(dir + "/train-{0..0}0000{1..2}.tar") == std::vector<std::string>{all[1], all[2]});
  CHECK(mae::expand_shards(all[1]) == std::vector<std::string>{all[1]});
  CHECK(mae::is_shard_spec(dir + "/train-{000000..000002}.tar"));
  CHECK(mae::is_shard_spec(all[0]));
  CHECK_FALSE(mae::is_shard_spec(kImages));
  CHECK(mae::is_shard_spec(kShards + "/bad/compressed.tar.gz"));  // taken, to be refused by name
  CHECK(mae::expand_shards(kShards + "/bad").size() == 6);
  CHECK_CONTAINS(error_of([&] { mae::expand_shards(dir + "/train-{000000..000003}.tar"); }),
                 "train-000003.tar: no such shard");
  CHECK_CONTAINS(error_of([&] { mae::expand_shards(dir + "/train-{3..1}.tar"); }), "runs backwards");
  CHECK_CONTAINS(error_of([&] { mae::expand_shards(kImages); }), "holds no .tar shards");
  const mae::ShardDataset two(dir + "/train-{000000,000002}.tar", options());
  CHECK(two.size() == 16);
  CHECK(two.shard_ends() == std::vector<Index>{8, 16});
}

TEST_CASE("shards: a validation set takes classes.txt from the parent directory; unlabelled shards pretrain only") {
  const mae::ShardDataset val(kShards + "/good/val", options(3, true));
  CHECK(val.size() == 6);
  CHECK(val.class_names() == std::vector<std::string>{"cat", "dog", "bird"});
  for (Index i = 0; i < 6; ++i) CHECK(val.label(i) == static_cast<int>(i % 3));

  const mae::ShardDataset u(kShards + "/unlabelled", options());
  CHECK(u.size() == 5);
  CHECK(u.label(0) == -1);
  CHECK(u.class_names().empty());
  CHECK_CONTAINS(error_of([&] { mae::ShardDataset(kShards + "/unlabelled", options(3, true)); }),
                 "u-000000.tar: sample 'u0' has no label (.cls)");
  // numbers as names without a classes file; a validation set adopts the training set's
  mae::ShardDataset bad(kShards + "/bad/no_label.tar", options());
  CHECK(bad.class_names() == std::vector<std::string>{"0", "1", "2"});
  CHECK_CONTAINS(error_of([&] { bad.use_classes({"x", "y"}); }), "no_label.tar:c.jpg: label 2 outside the 2 classes");
}

TEST_CASE("shards: each bad shard is refused, named, with what is wrong") {
  const auto refused = [](const std::string& shard, bool labelled) {
    return error_of([&] { mae::ShardDataset(kShards + "/" + shard, options(3, labelled)); });
  };
  CHECK_CONTAINS(refused("bad/not_a_tar.tar", false), "bad/not_a_tar.tar: not a readable tar shard");
  CHECK_CONTAINS(refused("bad/truncated.tar", false), "bad/truncated.tar");
  CHECK_CONTAINS(refused("bad/truncated.tar", false), "runcated");
  CHECK_CONTAINS(refused("bad/compressed.tar.gz", false), "bad/compressed.tar.gz: a compressed shard (gzip)");
  CHECK_CONTAINS(refused("bad/no_image.tar", false), "bad/no_image.tar: sample 'b' has no image");
  CHECK_CONTAINS(refused("bad/corrupt_image.tar", false), "bad/corrupt_image.tar:b.png: unreadable PNG");
  CHECK(refused("bad/no_label.tar", false).empty());
  CHECK_CONTAINS(refused("bad/no_label.tar", true), "bad/no_label.tar: sample 'b' has no label (.cls)");
  CHECK_CONTAINS(refused("bad_label/b-000000.tar", false), "b-000000.tar:b.jpg: label 5 outside the 3 classes of");
}

TEST_CASE("shards: the loader shuffles shards, gives each process its own, and mixes them through the buffer") {
  const mae::ShardDataset ds(kShards + "/good/train", options());
  const auto shard_of = [&](Index i) { return i < 8 ? 0 : i < 16 ? 1 : 2; };
  const std::vector<double> mean{0.5, 0.5, 0.5}, sd{0.25, 0.25, 0.25};
  mae::BatchLoader one(ds, 8, 4, 7, {}, mean, sd);
  one.set_shuffle_buffer(1);
  // one process, no buffer: whole shards, each once, in an order that changes with the epoch
  const auto e0 = one.permutation(0), e1 = one.permutation(1);
  REQUIRE(e0.size() == 24);
  CHECK(std::set<Index>(e0.begin(), e0.end()).size() == 24);
  for (Index k = 0; k < 24; ++k) CHECK(e0[k] % 8 == k % 8);  // a shard read in its own order
  std::vector<int> order0, order1;
  for (Index k = 0; k < 24; k += 8) order0.push_back(shard_of(e0[k])), order1.push_back(shard_of(e1[k]));
  bool differs = order0 != order1;
  for (Index e = 2; e < 8 && !differs; ++e) differs = shard_of(one.permutation(e)[0]) != order0[0];
  CHECK(differs);
  // the buffer mixes samples, still each once, the same for the same seed
  one.set_shuffle_buffer(10);
  const auto m0 = one.permutation(0);
  CHECK(std::set<Index>(m0.begin(), m0.end()).size() == 24);
  CHECK(m0 != e0);
  CHECK(m0 == one.permutation(0));
  one.set_shuffle_buffer(1000);  // a buffer larger than the stream: all of it, shuffled
  const auto big = one.permutation(0);
  CHECK(std::set<Index>(big.begin(), big.end()).size() == 24);
  CHECK(big != e0);
  // two processes: rank 0 takes shards 0 and 2 of the epoch's order, rank 1 shard 1, which it
  // goes through again to fill the epoch's 24 / (2 x 4) = 3 batches
  mae::BatchLoader r0(ds, 8, 4, 7, {}, mean, sd), r1(ds, 8, 4, 7, {}, mean, sd);
  r0.set_shard(0, 2), r1.set_shard(1, 2);
  for (Index e = 0; e < 3; ++e) {
    const auto a = r0.permutation(e), b = r1.permutation(e);
    REQUIRE(a.size() == 12);
    REQUIRE(b.size() == 12);
    std::set<int> sa, sb;
    for (Index i : a) sa.insert(shard_of(i));
    for (Index i : b) sb.insert(shard_of(i));
    CHECK(sb.size() == 1);
    CHECK(sa.count(*sb.begin()) == 0);
    CHECK(std::set<Index>(b.begin(), b.end()).size() == 8);  // all 8 of its shard
    CHECK(std::set<Index>(a.begin(), a.end()).size() == 12);
  }
  // batches are the images of the order, augmented, and the same for any thread count
  std::vector<float> x(static_cast<std::size_t>(4 * 3 * 8 * 8));
  std::vector<int> y(4);
  r1.batch(0, 1, x.data(), y.data());
  const auto b = r1.permutation(0);
  for (Index k = 0; k < 4; ++k) CHECK(y[k] == ds.label(b[4 + k]));
  mae::BatchLoader four(ds, 8, 2, 7, {}, mean, sd);
  CHECK_CONTAINS(error_of([&] { four.set_shard(0, 4); }), "3 shards for 4 processes");
  CHECK_CONTAINS(error_of([&] { four.set_shuffle_buffer(0); }), "at least one sample");
}

TEST_CASE("shards: ShardWriter's shards read back, split by count, and nothing is left half-written") {
  const fs::path dir = mae_test::scratch_dir("shard_writer");
  std::vector<std::string> pictures;
  const auto m = manifest();
  for (const auto& row : m["good/val/val-000000.tar"]) pictures.push_back(row["picture"]);
  std::vector<std::string> written;
  {
    mae::ShardWriter w((dir / "part").string(), 4);
    for (std::size_t k = 0; k < pictures.size(); ++k) {
      const std::string& p = pictures[k];
      w.add("d/img" + std::to_string(k),
            {{p.substr(p.rfind('.') + 1), mae_test::slurp(kImages + "/" + p)}, {"cls", std::to_string(k % 2)}});
    }
    CHECK_CONTAINS(error_of([&] { w.add("a.b", {}); }), "holds a '.'");
    written = w.finish();
  }
  REQUIRE(written.size() == 2);
  CHECK(written[0] == (dir / "part-000000.tar").string());
  for (const auto& e : fs::directory_iterator(dir)) CHECK(e.path().extension() == ".tar");
  const mae::ShardDataset ds(dir.string(), options(3, true));
  REQUIRE(ds.size() == static_cast<Index>(pictures.size()));
  CHECK(ds.shard_ends() == std::vector<Index>{4, 6});
  for (Index i = 0; i < ds.size(); ++i) {
    CHECK(ds.label(i) == static_cast<int>(i % 2));
    mae::ImageFolderOptions fo;
    const mae::ImageFolder file(std::vector<std::string>{kImages + "/" + pictures[static_cast<std::size_t>(i)]}, fo);
    std::vector<float> a(static_cast<std::size_t>(3 * ds.height(i) * ds.width(i))), b(a.size());
    ds.load(i, a.data());
    file.load(0, b.data());
    CHECK(a == b);
  }
}

TEST_CASE("shards: the images' statistics are kept in an image index while the shards are unchanged") {
  const fs::path d = mae_test::scratch_dir("shards_stats");
  fs::copy(kShards + "/good/train", d / "train");
  const std::string index = (d / "image_index.txt").string();
  std::vector<double> mean, sd;
  {
    mae::ImageIndexCache cache(index);
    const mae::ShardDataset ds((d / "train").string(), options());
    REQUIRE(!ds.content_stamp().empty());
    mae::dataset_mean_std(ds, mean, sd, 10000, {}, &cache);
    cache.save();
  }
  const mae::ShardDataset again((d / "train").string(), options());
  const auto kept = mae::ImageIndexCache(index).statistics(mae::statistics_key(again, again.size()));
  REQUIRE(kept.has_value());
  CHECK(*kept == std::vector<double>{mean[0], mean[1], mean[2], sd[0], sd[1], sd[2]});
  // a shard rewritten (here only its times): another stamp, so the statistics are computed again
  const std::string first = mae::ShardDataset((d / "train").string(), options()).content_stamp();
  const fs::path shard = mae::expand_shards((d / "train").string()).front();
  fs::last_write_time(shard, fs::last_write_time(shard) + std::chrono::seconds(1));
  CHECK(mae::ShardDataset((d / "train").string(), options()).content_stamp() != first);
}

TEST_CASE("shards: the index as bytes for another process gives the same dataset without reading a shard") {
  const mae::ShardDataset ds(kShards + "/good/train", options(3, /*labelled=*/true));
  const mae::ShardDataset copy = mae::ShardDataset::from_index(ds.index(), options(3, true));
  REQUIRE(copy.size() == ds.size());
  CHECK(copy.name() == ds.name());
  CHECK(copy.shards() == ds.shards());
  CHECK(copy.shard_ends() == ds.shard_ends());
  CHECK(copy.class_names() == ds.class_names());
  CHECK(copy.has_class_file() == ds.has_class_file());
  CHECK(copy.content_stamp() == ds.content_stamp());
  CHECK(mae::dataset_fingerprint(copy) == mae::dataset_fingerprint(ds));
  for (Index i = 0; i < ds.size(); ++i) {
    CHECK(copy.item_name(i) == ds.item_name(i));
    std::vector<float> a(static_cast<std::size_t>(3 * ds.height(i) * ds.width(i))), b(a.size());
    ds.load(i, a.data()), copy.load(i, b.data());
    CHECK(a == b);
  }
  std::string cut = ds.index();
  cut.pop_back();
  CHECK_THROWS_WITH_AS(mae::ShardDataset::from_index(cut, options()), doctest::Contains("wrong size"), mae::Error);
  CHECK_THROWS_AS(mae::ShardDataset::from_index("no header", options()), mae::Error);
}
