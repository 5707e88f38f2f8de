// io/files.hpp and io/run_directory.hpp: a write goes where the path points (a symlink stays a
// link, a FIFO or a device is written through, a directory refused); a run directory is owned
// by one run (a lock, no other run's files replaced, a dead owner's lock taken over).
#include "test_util.hpp"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;
using mae_test::slurp;
using mae_test::spit;

namespace {
fs::path scratch(const std::string& name) {
  static const fs::path dir = mae_test::scratch_dir("files");
  const fs::path p = dir / name;
  fs::remove_all(p);
  return p;
}
bool is_regular_not_link(const fs::path& p) { return fs::is_regular_file(fs::symlink_status(p)); }
}  // namespace

TEST_CASE("write_file: a regular file is replaced atomically; a new one created") {
  const fs::path d = scratch("regular");
  fs::create_directories(d);
  mae::write_file((d / "a.csv").string(), "one\n");
  CHECK(slurp(d / "a.csv") == "one\n");
  mae::write_file((d / "a.csv").string(), "two\n");
  CHECK(slurp(d / "a.csv") == "two\n");
  for (const auto& e : fs::directory_iterator(d)) CHECK(e.path().filename() == "a.csv");  // no temporary left
  fs::permissions(d / "a.csv", fs::perms::owner_read | fs::perms::owner_write);  // a replaced file keeps its mode
  mae::write_file((d / "a.csv").string(), "three\n");
  CHECK(fs::status(d / "a.csv").permissions() == (fs::perms::owner_read | fs::perms::owner_write));
}

TEST_CASE("write_file: through a symlink the target is written and the link stays a link") {
  const fs::path d = scratch("symlink");
  fs::create_directories(d / "real");
  spit(d / "real" / "t.csv", "old");
  fs::create_symlink("real/t.csv", d / "link.csv");
  mae::write_file((d / "link.csv").string(), "new");
  CHECK(fs::is_symlink(d / "link.csv"));
  CHECK(slurp(d / "real" / "t.csv") == "new");
  CHECK(is_regular_not_link(d / "real" / "t.csv"));
  // a link to a file not there yet: the file is created where the link points
  fs::create_symlink("real/later.csv", d / "dangling.csv");
  mae::write_file((d / "dangling.csv").string(), "made");
  CHECK(fs::is_symlink(d / "dangling.csv"));
  CHECK(slurp(d / "real" / "later.csv") == "made");
  // a chain of links
  fs::create_symlink("link.csv", d / "link2.csv");
  mae::write_file((d / "link2.csv").string(), "chained");
  CHECK(fs::is_symlink(d / "link2.csv"));
  CHECK(fs::is_symlink(d / "link.csv"));
  CHECK(slurp(d / "real" / "t.csv") == "chained");
}

TEST_CASE("write_file: a FIFO is written through, not replaced") {
  const fs::path d = scratch("fifo");
  fs::create_directories(d);
  const fs::path fifo = d / "pipe";
  REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
  const std::string payload(200000, 'x');  // more than a pipe's buffer: written while read
  // the reader is open first (so the writer's open does not wait) and never blocks, so that a
  // writer that replaced the FIFO instead of writing into it fails the test rather than hanging it
  const int rfd = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  REQUIRE(rfd >= 0);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    try {
      mae::write_file(fifo.string(), payload);
    } catch (...) {
    }
    done = true;
  });
  std::string got;
  char buf[4096];
  for (bool last = false;;) {
    const ssize_t n = ::read(rfd, buf, sizeof buf);
    if (n > 0) {
      got.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (last) break;
    last = done.load();  // once the writer is done, one more pass drains what is left
    if (!last) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  writer.join();
  ::close(rfd);
  CHECK(got == payload);
  struct stat st {};
  REQUIRE(::lstat(fifo.c_str(), &st) == 0);
  CHECK(S_ISFIFO(st.st_mode));
  for (const auto& e : fs::directory_iterator(d)) CHECK(e.path().filename() == "pipe");
}

TEST_CASE("write_file: /dev/null stays a device; standard output is written as '-'") {
  mae::write_file("/dev/null", std::string(100000, 'z'));
  struct stat st {};
  REQUIRE(::lstat("/dev/null", &st) == 0);
  CHECK(S_ISCHR(st.st_mode));
  CHECK(mae::output_target("/dev/null").kind == mae::OutputTarget::Kind::stream);
  // "-": file descriptor 1, here pointed at a file for the test
  const fs::path d = scratch("stdout");
  fs::create_directories(d);
  std::fflush(stdout);
  const int saved = ::dup(STDOUT_FILENO);
  const int fd = ::open((d / "out.txt").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  ::dup2(fd, STDOUT_FILENO);
  ::close(fd);
  mae::write_file("-", "to stdout\n");
  ::dup2(saved, STDOUT_FILENO);
  ::close(saved);
  CHECK(slurp(d / "out.txt") == "to stdout\n");
}

TEST_CASE("write_file refuses a directory, an empty path, a missing directory; the old file is kept") {
  const fs::path d = scratch("refused");
  fs::create_directories(d / "sub");
  CHECK_THROWS_WITH_AS(mae::write_file((d / "sub").string(), "x"), doctest::Contains("is a directory"), mae::Error);
  CHECK(fs::is_directory(d / "sub"));
  CHECK_THROWS_WITH_AS(mae::write_file("", "x"), doctest::Contains("empty output path"), mae::Error);
  CHECK_THROWS_WITH_AS(mae::write_file((d / "no" / "x.csv").string(), "x"),
                       doctest::Contains(("directory '" + (d / "no").string() + "' does not exist").c_str()),
                       mae::Error);
  // a symlink to a directory is a directory
  fs::create_directory_symlink("sub", d / "dirlink");
  CHECK_THROWS_WITH_AS(mae::write_file((d / "dirlink").string(), "x"), doctest::Contains("is a directory"), mae::Error);
  CHECK(fs::is_symlink(d / "dirlink"));
}

// --- run directories -------------------------------------------------------------------------

TEST_CASE("RunDirectory: a fresh run refuses a directory holding another run's checkpoint") {
  using Mode = mae::RunDirectory::Mode;
  const fs::path d = scratch("run_fresh");
  { mae::RunDirectory ok(d.string(), Mode::fresh); }  // created; empty is fine
  CHECK(fs::is_directory(d));
  spit(d / "log.csv", "a log alone is a run that saved nothing");
  { mae::RunDirectory ok(d.string(), Mode::fresh); }
  spit(d / "mae_final.safetensors", "weights");
  CHECK_THROWS_WITH_AS(mae::RunDirectory(d.string(), Mode::fresh), doctest::Contains("holds another run (mae_final"),
                       mae::Error);
  CHECK(slurp(d / "mae_final.safetensors") == "weights");
  // a resume from this directory's checkpoint is its own run; from elsewhere it would mix two
  spit(d / "checkpoint.safetensors", "ckpt");
  { mae::RunDirectory ok(d.string(), Mode::resume, (d / "checkpoint.safetensors").string()); }
  const fs::path other = scratch("run_other");
  fs::create_directories(other);
  CHECK_THROWS_WITH_AS(mae::RunDirectory(d.string(), Mode::resume, (other / "checkpoint.safetensors").string()),
                       doctest::Contains("would mix the two"), mae::Error);
}

TEST_CASE("RunDirectory: overwrite removes the previous run's files and nothing else") {
  using Mode = mae::RunDirectory::Mode;
  const fs::path d = scratch("run_overwrite");
  fs::create_directories(d / "keep_dir");
  for (const char* f : {"checkpoint.safetensors", "mae_final.safetensors", "log.csv", "loss.png",
                        "reconstruction_epoch003.png", "eval_val.csv", "confusion_val.png"})
    spit(d / f, "old");
  spit(d / "notes.txt", "mine");
  { mae::RunDirectory o(d.string(), Mode::overwrite); }
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(d)) left.push_back(e.path().filename().string());
  std::sort(left.begin(), left.end());
  CHECK(left == std::vector<std::string>{".mae.lock", "keep_dir", "notes.txt"});
}

TEST_CASE("RunDirectory: a second run on a directory is refused while the first holds it") {
  using Mode = mae::RunDirectory::Mode;
  const fs::path d = scratch("run_lock");
  {
    mae::RunDirectory first(d.string(), Mode::fresh);
    CHECK(slurp(d / ".mae.lock").rfind(std::to_string(::getpid()) + " ", 0) == 0);  // "pid host"
    CHECK_THROWS_WITH_AS(mae::RunDirectory(d.string(), Mode::fresh),
                         doctest::Contains(("in use by another run (process " + std::to_string(::getpid())).c_str()),
                         mae::Error);
    CHECK_THROWS_WITH_AS(mae::RunDirectory(d.string(), Mode::overwrite), doctest::Contains("in use by another run"),
                         mae::Error);
  }
  CHECK(slurp(d / ".mae.lock").empty());  // released: emptied, not deleted
  { mae::RunDirectory again(d.string(), Mode::fresh); }
  // a lock left by a process that died (the file names it, nobody holds the flock): taken over
  spit(d / ".mae.lock", "999999999 elsewhere\n");
  {
    mae::RunDirectory taken(d.string(), Mode::fresh);
    CHECK(slurp(d / ".mae.lock").rfind(std::to_string(::getpid()) + " ", 0) == 0);
  }
}

// --- the checkpoints of a run directory --------------------------------------------------------

TEST_CASE("checkpoint series: the newest is checkpoint.safetensors too, the last K kept, older removed after") {
  const fs::path d = scratch("series");
  fs::create_directories(d);
  CHECK(mae::numbered_checkpoint_step("checkpoint-120.safetensors") == 120);
  CHECK(mae::numbered_checkpoint_step("checkpoint.safetensors") == -1);
  CHECK(mae::numbered_checkpoint_step("checkpoint-12a.safetensors") == -1);
  CHECK(mae::numbered_checkpoint_step("checkpoint-5.safetensors.tmp.77") == -1);
  for (mae::Index step : {5, 10, 15, 20})
    mae::write_checkpoint_series(d.string(), step, "ckpt " + std::to_string(step), 2);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(d)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  CHECK(names ==
        std::vector<std::string>{"checkpoint-15.safetensors", "checkpoint-20.safetensors", "checkpoint.safetensors"});
  CHECK(slurp(d / "checkpoint.safetensors") == "ckpt 20");
  CHECK(fs::equivalent(d / "checkpoint.safetensors", d / "checkpoint-20.safetensors"));  // a link, not a copy
  CHECK_THROWS_WITH_AS(mae::write_checkpoint_series(d.string(), 25, "x", 0), doctest::Contains("keep at least 1"),
                       mae::Error);
}

TEST_CASE("newest_valid_checkpoint: the newest that opens; a corrupt one passed over with a warning") {
  using M = mae::MaskedAutoencoder<mae::Config<8, 4, 1, 8, 1, 2, 8, 1, 2>>;
  const fs::path d = scratch("newest");
  fs::create_directories(d);
  std::vector<std::string> warnings;
  const auto warn = [&warnings](const std::string& w) { warnings.push_back(w); };
  CHECK(mae::newest_valid_checkpoint(d.string(), warn).empty());  // nothing: a fresh start
  M m;
  for (mae::Index step : {3, 6}) {
    std::vector<mae::safetensors::TensorOut> t = m.state_dict();
    mae::write_checkpoint_series(d.string(), step,
                                 mae::safetensors::serialize(t, {{mae::keys::step, std::to_string(step)}}), 3);
  }
  CHECK(mae::newest_valid_checkpoint(d.string(), warn) == (d / "checkpoint-6.safetensors").string());
  CHECK(warnings.empty());
  // the newest cut short (a crash inside the write of a filesystem without atomic rename)
  const std::string six = slurp(d / "checkpoint-6.safetensors");
  fs::remove(d / "checkpoint-6.safetensors");  // (checkpoint.safetensors is the same file: unlink first)
  fs::remove(d / "checkpoint.safetensors");
  spit(d / "checkpoint-6.safetensors", six.substr(0, six.size() / 2));
  CHECK(mae::newest_valid_checkpoint(d.string(), warn) == (d / "checkpoint-3.safetensors").string());
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("checkpoint-6.safetensors") != std::string::npos);
  // a safetensors file without a step is no training checkpoint
  m.save((d / "checkpoint-9.safetensors").string());
  warnings.clear();
  CHECK(mae::newest_valid_checkpoint(d.string(), warn) == (d / "checkpoint-3.safetensors").string());
  CHECK(warnings.size() == 2);
}
