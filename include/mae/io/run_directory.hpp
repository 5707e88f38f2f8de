// mae/io/run_directory.hpp — a training run's output directory, owned by one run at a time.
//
// Claiming a directory (created if missing):
//   - takes its lock, DIR/.mae.lock: an flock(2) held while the run lives (the kernel drops it
//     when the process dies, however it dies), and the owner's "pid host" written inside for
//     the messages. A second run on the directory is refused at once, naming the first; a lock
//     file whose owner is gone is taken over with a note naming that owner. The file is never
//     deleted (deleting it would let two runs lock two different files): releasing it empties
//     it, so an empty lock file is a clean end and a non-empty unlocked one a run that died.
//   - refuses a directory holding another run's checkpoint or weights (Mode::fresh), unless
//     the run resumes from a checkpoint of this directory (Mode::resume) or the caller chose to
//     replace it (Mode::overwrite: the previous run's files are removed first, and listed).
#ifndef MAE_IO_RUN_DIRECTORY_HPP
#define MAE_IO_RUN_DIRECTORY_HPP

#include "../core/common.hpp"
#include "checkpoint_series.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace mae {

class RunDirectory {
 public:
  enum class Mode { fresh, resume, overwrite };

  // The files that make a directory a run's: a checkpoint (checkpoint-<step>.safetensors too)
  // or weights (a log alone is a run that saved nothing, and is replaced).
  static const std::vector<std::string>& run_files() {
    static const std::vector<std::string> f = {"checkpoint.safetensors", "mae_final.safetensors",
                                               "classifier.safetensors", "probe.safetensors"};
    return f;
  }
  // What Mode::overwrite removes: the run files and everything a run of mae writes beside them.
  static bool is_run_file(const std::string& name) {
    for (const auto& f : run_files())
      if (name == f) return true;
    return numbered_checkpoint_step(name) >= 0;
  }
  static bool written_by_a_run(const std::string& name) {
    if (is_run_file(name)) return true;
    for (const char* f : {"log.csv", "eval.csv", "loss.png", "reconstruction.png"})
      if (name == f) return true;
    const auto starts = [&name](const char* p) { return name.rfind(p, 0) == 0; };
    const auto ends = [&name](const char* s) {
      const std::size_t n = std::strlen(s);
      return name.size() >= n && name.compare(name.size() - n, n, s) == 0;
    };
    return (starts("reconstruction_epoch") && ends(".png")) || (starts("eval_") && ends(".csv")) ||
           (starts("confusion_") && ends(".png"));
  }

  // `resume_from`: the checkpoint a Mode::resume run continues (it must be in `dir`, or `dir`
  // must hold no other run). `how_to_choose` ends the refusal of a directory holding a run
  // (what the caller's user can do instead), e.g. "give --resume, --overwrite or another --out".
  RunDirectory(const std::string& dir, Mode mode, const std::string& resume_from = "",
               const std::string& how_to_choose = "resume it, overwrite it, or choose another directory")
      : dir_(dir) {
    namespace fs = std::filesystem;
    if (dir.empty()) throw Error("an empty output directory name");
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (!fs::is_directory(dir))
      throw Error(dir + ": cannot create the output directory" + (ec ? " (" + ec.message() + ")" : std::string()));
    lock();
    try {
      const std::vector<std::string> found = run_files_present();
      if (mode == Mode::fresh && !found.empty())
        throw Error(dir + " holds another run (" + join(found) + "); it is kept: " + how_to_choose);
      if (mode == Mode::resume && !found.empty() && !resume_from.empty() && !same_directory(resume_from))
        throw Error(dir + " holds another run (" + join(found) + ") than the checkpoint " + resume_from +
                    " continues; resuming into it would mix the two: " + how_to_choose);
      if (mode == Mode::overwrite) {
        std::vector<std::string> removed;
        for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
          const std::string name = it->path().filename().string();
          if (!written_by_a_run(name) || it->is_directory()) continue;
          std::error_code rm;
          if (!fs::remove(it->path(), rm) || rm)
            throw Error(it->path().string() + ": cannot remove (" + rm.message() + ")");
          removed.push_back(name);
        }
        std::sort(removed.begin(), removed.end());
        if (!removed.empty())
          std::fprintf(stderr, "overwriting the run in %s: removed %s\n", dir.c_str(), join(removed).c_str());
      }
    } catch (...) {
      release();
      throw;
    }
  }
  RunDirectory(const RunDirectory&) = delete;
  RunDirectory& operator=(const RunDirectory&) = delete;
  ~RunDirectory() { release(); }

  const std::string& path() const { return dir_; }
  std::string lock_path() const { return dir_ + "/.mae.lock"; }

 private:
  void lock() {
    fd_ = ::open(lock_path().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw Error(lock_path() + ": cannot open the lock (" + std::strerror(errno) + ")");
    const std::string owner = read_owner();
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      ::close(fd_);
      fd_ = -1;
      if (err == EWOULDBLOCK)
        throw Error(dir_ + " is in use by another run (" + (owner.empty() ? "its owner is starting" : describe(owner)) +
                    ", " + lock_path() + "): wait for it to end, or choose another directory");
      throw Error(lock_path() + ": cannot lock (" + std::strerror(err) + ")");
    }
    if (!owner.empty())
      std::fprintf(stderr, "note: %s was left locked by %s, which ended without releasing it; taking it over\n",
                   lock_path().c_str(), describe(owner).c_str());
    char host[256] = "?";
    ::gethostname(host, sizeof host - 1);
    const std::string me = std::to_string(::getpid()) + " " + host + "\n";
    if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size()))
      std::fprintf(stderr, "note: %s: cannot record the owner (%s)\n", lock_path().c_str(), std::strerror(errno));
  }
  void release() {
    if (fd_ < 0) return;
    if (::ftruncate(fd_, 0) != 0) { /* the lock still goes with the descriptor */
    }
    ::close(fd_);  // drops the flock
    fd_ = -1;
  }
  std::string read_owner() const {
    char buf[300] = {};
    const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    std::string s = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  }
  static std::string describe(const std::string& owner) {  // "pid host" -> "process pid on host"
    const std::size_t sp = owner.find(' ');
    if (sp == std::string::npos) return "process " + owner;
    return "process " + owner.substr(0, sp) + " on " + owner.substr(sp + 1);
  }
  std::vector<std::string> run_files_present() const {
    std::vector<std::string> found;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec))
      if (is_run_file(it->path().filename().string())) found.push_back(it->path().filename().string());
    std::sort(found.begin(), found.end());
    return found;
  }
  bool same_directory(const std::string& file) const {
    namespace fs = std::filesystem;
    std::error_code a, b;
    const fs::path p(file);
    return fs::equivalent(p.has_parent_path() ? p.parent_path() : fs::path("."), dir_, a) && !a && !b;
  }
  static std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  }

  std::string dir_;
  int fd_ = -1;
};

}  // namespace mae

#endif  // MAE_IO_RUN_DIRECTORY_HPP
